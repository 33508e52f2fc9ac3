"""Access control and personal-data protection: database roles, their grants, the masked read
layers' model generator and the role test matrix (include/registry/access.yaml)."""
