"""Borderlane provisioning: device PKI, broker configuration and ACLs."""
