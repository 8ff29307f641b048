"""Digital signatures: manifests, CMS signing and verification, test PKI."""

import warnings

# A common name of up to 64 characters, as X.520 bounds it, is read with a warning from
# cryptography, which counts 64 bytes of UTF-8 (pki.NAME_LENGTH): a Vietnamese agency's
# name is not a fault.
warnings.filterwarnings(
    "ignore", message=r"Attribute's length must be >= 1 and <= 64", category=UserWarning
)
# pyHanko imports cryptography's DSA types, which cryptography 49 and later deprecate as
# they load: said on every command, of a key type congvan never makes nor takes.
warnings.filterwarnings("ignore", message=r"DSA is deprecated", category=UserWarning)
