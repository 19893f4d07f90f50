# SPDX-License-Identifier: Apache-2.0
"""Words: normalisation, the causal context of an utterance, the tokenizer, backchannel words."""
