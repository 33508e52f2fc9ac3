"""Dashboards generated from the warehouse: the customer 360 view and the big-screen overview."""
