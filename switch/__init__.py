"""Union member card acquiring switch.

Bytes from POS terminals are framed (``switch.iso.framing``), decoded into one normalized message for both wire
profiles (``switch.iso.codec``), run through a pipeline of small authorization participants
(``switch.pipeline``) that ask the HSM (``switch.hsm``) to check MACs and PINs and the double-entry ledger
(``switch.ledger``) to move money, and answered only after the durable commit. The back office
(``switch.backoffice``, ``switch.clearing``) issues cards, loads money, writes clearing files and notices.
"""

__version__ = "0.1.0"
