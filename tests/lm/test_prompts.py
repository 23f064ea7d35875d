import pytest

from retraction_kedro.lm import answer_messages, chat_prompt, continuation_prompt, question_messages


def test_continuation_prompt_leaves_the_answer_open(tiny_lm):
    prompt = continuation_prompt(tiny_lm.tokenizer, answer_messages("Name a city in Germany.", "Lyon", system="Be terse."))
    assert prompt.endswith("<|im_start|>assistant\nLyon")
    assert prompt.startswith("<|im_start|>system\nBe terse.<|im_end|>")


def test_continuation_prompt_appends_the_fixed_suffix(tiny_lm):
    prompt = continuation_prompt(tiny_lm.tokenizer, answer_messages("Name a city in Germany.", "Lyon"), suffix=" is")
    assert prompt.endswith("assistant\nLyon is")


def test_chat_prompt_opens_the_assistant_turn(tiny_lm):
    prompt = chat_prompt(tiny_lm.tokenizer, question_messages("Name a city in Germany."))
    assert prompt.endswith("<|im_end|>\n<|im_start|>assistant\n")


def test_prompts_reject_the_wrong_last_turn(tiny_lm):
    with pytest.raises(ValueError, match="end with the assistant"):
        continuation_prompt(tiny_lm.tokenizer, question_messages("Q?"))
    with pytest.raises(ValueError, match="end with a user turn"):
        chat_prompt(tiny_lm.tokenizer, answer_messages("Q?", "A"))
    with pytest.raises(ValueError, match="'role' and 'content'"):
        chat_prompt(tiny_lm.tokenizer, [{"text": "hi"}])


def test_prompt_without_chat_template_fails_clearly(tiny_lm):
    import copy

    bare = copy.deepcopy(tiny_lm.tokenizer)
    bare.chat_template = None
    with pytest.raises(ValueError, match="no chat template"):
        chat_prompt(bare, question_messages("Q?"))
