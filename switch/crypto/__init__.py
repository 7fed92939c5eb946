"""Pure payment-crypto primitives (no I/O): DES/3DES with cached ciphers, KCVs, ISO 9564 PIN blocks,
the UnionPay ECB and ISO 9797-1 MACs, Luhn. Used by the HSM simulator (inside which clear keys live) and by
the terminal simulator (which, like a real POS, holds its own working keys); the switch itself only ever
handles keys under the LMK and never calls the key-taking functions here.
"""
