from turnfusion.training.encoders import build_text_encoder

SIZES = {"n_layer": 1, "n_embd": 16, "n_head": 2}


def test_a_text_encoder_from_config_takes_the_fused_gelu_unless_its_config_names_another(tmp_path):
    tokenizer = list(range(40))  # build_text_encoder reads only its length here
    default = build_text_encoder("config", tokenizer, SIZES, tmp_path / "no_teacher", n_positions=8)
    assert default.config.activation_function == "gelu_pytorch_tanh"
    assert default.config.vocab_size == 40 and default.config.n_embd == 16
    named = build_text_encoder("config", tokenizer, {**SIZES, "activation_function": "relu"}, tmp_path / "no_teacher",
                               n_positions=8)
    assert named.config.activation_function == "relu"  # model.text_config's own choice wins
