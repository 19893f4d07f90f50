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


def test_the_text_encoder_made_from_the_teacher_fine_tunes_with_the_teachers_dropout(tmp_path):
    from transformers import GPT2Config, GPT2LMHeadModel

    teacher = GPT2LMHeadModel(GPT2Config(vocab_size=40, n_positions=8, **SIZES, resid_pdrop=0.0, embd_pdrop=0.0,
                                         attn_pdrop=0.0))
    teacher.save_pretrained(str(tmp_path / "teacher"))
    encoder = build_text_encoder("teacher", list(range(40)), SIZES, tmp_path / "teacher", n_positions=8)
    assert (encoder.config.resid_pdrop, encoder.config.embd_pdrop, encoder.config.attn_pdrop) == (0.0, 0.0, 0.0)
