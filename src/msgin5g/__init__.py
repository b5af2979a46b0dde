# SPDX-License-Identifier: Apache-2.0
"""msgin5g: the 3GPP MSGin5G Service (TS 29.538 Rel-18) in Python."""

__all__ = ["__version__"]

__version__ = "0.1.0"
