# SPDX-License-Identifier: Apache-2.0
"""The Broadcast Message Gateway over Cell Broadcast (MSGin5G-7 toward an osmo-cbc style CBC)."""
