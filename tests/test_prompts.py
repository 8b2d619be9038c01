"""Prompt formats: each named format renders, ends at its answer cue, and permutes options."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from surveylm.errors import ConfigError, DataError
from surveylm.prompts import (
    FORMATS,
    PromptFormat,
    apply_chat_template,
    default_format,
    get_format,
    option_labels,
    option_letters,
    option_orders,
    render_prompt,
)
from surveylm.survey import Question

VOTE = Question("vote", "Who did you vote for?", ("Clinton", "Dole", "Perot"))
PID = Question(
    "PID", "In politics today, do you consider yourself a",
    ("Democrat", "Republican", "Independent"), label="party identification",
)  # fmt: skip
QS = {"PID": PID}
GROUP_CTX = {"PID": ["Democrat"], "country": ["Kenya"]}
RESP_CTX = {"PID": "Republican", "age": 34}


def test_every_format_has_a_name_citation_and_ends_at_its_cue():
    assert set(FORMATS) == {"qa", "bio", "portray", "country", "profile", "persona", "classify"}
    for name, fmt in FORMATS.items():
        ctx = GROUP_CTX if fmt.kind == "group" else RESP_CTX
        text = render_prompt(VOTE, ctx, name, questions=QS)
        assert fmt.name == name and fmt.citation
        assert text.endswith(fmt.answer_cue)
        assert fmt.answer_cue in (
            "Answer:",
            "If had to select one of the options, my answer would be (",
        )
        assert "Who did you vote for?" in text
        for option in VOTE.options:
            assert option in text
        assert "{" not in text  # no placeholder left unfilled


def test_qa_format_answers_the_defining_question_with_its_letter():
    text = render_prompt(VOTE, {"PID": ["Republican"]}, "qa", questions=QS)
    assert text.startswith("Question: In politics today, do you consider yourself a\nA. Democrat")
    assert (
        "Answer: B\n\nAnswer the following question keeping in mind your previous answers." in text
    )
    two = render_prompt(VOTE, {"PID": ["Democrat", "Independent"]}, "qa", questions=QS)
    assert "Answer: A or C" in two


def test_bio_portray_country_templates():
    bio = render_prompt(VOTE, {"PID": ["Democrat"]}, "bio", questions=QS)
    assert bio.startswith(
        "Below you will be asked to provide a short description of your "
        "party identification and then answer some questions."
    )
    assert "Description: My party identification is Democrat." in bio
    portray = render_prompt(VOTE, GROUP_CTX, "portray", questions=QS)
    assert portray.startswith(
        "Answer the following question as if your party identification "
        "were Democrat and your country were Kenya."
    )
    country = render_prompt(VOTE, {"country": ["Kenya"]}, "country")
    assert country.startswith("How would someone from Kenya answer the following question:")
    assert "(A)Clinton\n(B)Dole\n(C)Perot\nIf had to select one" in country
    assert country.endswith("my answer would be (")


def test_respondent_formats():
    profile = render_prompt(VOTE, RESP_CTX, "profile", questions=QS)
    assert profile == (
        "party identification: Republican\nage: 34\n\nQuestion: Who did you vote for?\n"
        "A. Clinton\nB. Dole\nC. Perot\nAnswer:"
    )
    persona = render_prompt(VOTE, RESP_CTX, "persona", questions=QS)
    assert persona.startswith(
        "Imagine a survey respondent whose party identification is Republican and whose age is 34."
    )
    # no context renders cleanly
    assert render_prompt(VOTE, {}, "profile").startswith("Question: Who did you vote for?")


def test_classify_lists_options_by_name_and_reads_them_by_name():
    text = render_prompt(VOTE, RESP_CTX, "classify", [1, 2, 0], questions=QS)
    assert text == (
        "party identification: Republican\nage: 34\n\nQuestion: Who did you vote for?\n"
        "Answer with one of these options:\nDole\nPerot\nClinton\nAnswer:"
    )
    assert FORMATS["classify"].labels == "options" and FORMATS["classify"].answer_cue == "Answer:"
    assert option_labels(VOTE, "classify", [1, 2, 0]) == ["Dole", "Perot", "Clinton"]
    assert option_labels(VOTE, "qa", [1, 2, 0]) == ["A", "B", "C"]  # letters follow positions
    assert all(f.labels == "letters" for n, f in FORMATS.items() if n != "classify")


def test_lookup_and_defaults():
    assert get_format("bio") is FORMATS["bio"]
    assert default_format("group").name == "qa"
    assert default_format("respondent").name == "profile"
    custom = PromptFormat("mine", "respondent", "{context}\nQ: {question}\n{options}\nA:")
    assert render_prompt(VOTE, {"x": 1}, custom).endswith("C. Perot\nA:")
    with pytest.raises(ConfigError, match="unknown prompt format 'nope'"):
        get_format("nope")


def test_option_letters():
    assert option_letters(3) == ["A", "B", "C"]
    assert option_letters(26)[-1] == "Z"
    assert option_letters(27)[:2] == ["1", "2"] and option_letters(27)[-1] == "27"
    with pytest.raises(DataError):
        option_letters(0)


def test_permuted_options_are_relettered():
    text = render_prompt(VOTE, RESP_CTX, "profile", [2, 0, 1], questions=QS)
    assert "A. Perot\nB. Clinton\nC. Dole\nAnswer:" in text
    with pytest.raises(DataError, match="not a permutation"):
        render_prompt(VOTE, RESP_CTX, "profile", [0, 0, 1])


@settings(max_examples=50, deadline=None)
@given(k=st.integers(2, 30), n=st.integers(1, 30), seed=st.integers(0, 10_000))
def test_option_orders_are_permutations(k, n, seed):
    for scheme in ("cyclic", "random"):
        if scheme == "cyclic" and n > k:
            with pytest.raises(ConfigError):
                option_orders(k, n, scheme=scheme)
            continue
        orders = option_orders(k, n, seed=seed, scheme=scheme)
        assert len(orders) == n
        np.testing.assert_array_equal(orders[0], np.arange(k))
        for o in orders:
            assert sorted(o.tolist()) == list(range(k))
    # seeded: same seed, same orders
    a = option_orders(k, min(n, 5), seed=seed, scheme="random")
    b = option_orders(k, min(n, 5), seed=seed, scheme="random")
    assert all((x == y).all() for x, y in zip(a, b, strict=True))


def test_cyclic_orders_are_balanced():
    orders = np.stack(option_orders(4, 4))
    for col in orders.T:  # every option appears at every position once
        assert sorted(col.tolist()) == [0, 1, 2, 3]


def test_apply_chat_template_uses_generation_prompt():
    class Tok:
        def apply_chat_template(self, messages, tokenize, add_generation_prompt):
            assert tokenize is False and add_generation_prompt is True
            return "".join(f"<{m['role']}>{m['content']}</s>" for m in messages) + "<assistant>"

    out = apply_chat_template(Tok(), "Q?", system="be brief")
    assert out == "<system>be brief</s><user>Q?</s><assistant>"
