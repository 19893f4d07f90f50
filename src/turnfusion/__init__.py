# SPDX-License-Identifier: Apache-2.0
"""turnfusion: text + audio turn-taking prediction (keep / shift / backchannel) as a reproducible DVC pipeline."""
