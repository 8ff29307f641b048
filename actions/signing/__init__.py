"""Digital signatures: manifests, CMS signing and verification, test PKI."""
