#!/usr/bin/env python3
"""The reference ids for Gpt2TokenizerTest.MatchesHuggingFace: trains a small
byte-level BPE with Hugging Face tokenizers on Debian's licence texts (all of
/usr/share/common-licenses but one, held out), saves vocab.json and
merges.txt into OUT_DIR, and writes, for each case k, case<k>.txt (the text,
UTF-8) and case<k>.ids (the ids HF gives, one line, space-separated).

Usage: hf_bpe_reference.py OUT_DIR
Exits 77 (the test skips, printing why) without the `tokenizers` package or
the licence texts.
"""
import os
import sys

LICENSES = "/usr/share/common-licenses"
HELD_OUT = "Apache-2.0"

try:
    from tokenizers import ByteLevelBPETokenizer
except ImportError:
    print("requires python package tokenizers (pip install tokenizers; "
          f"this is {sys.executable})")
    sys.exit(77)

if not os.path.isfile(os.path.join(LICENSES, HELD_OUT)):
    print(f"requires Debian's licence texts ({LICENSES}/{HELD_OUT}, "
          "package base-files)")
    sys.exit(77)

out = sys.argv[1]
train = sorted(os.path.join(LICENSES, name) for name in os.listdir(LICENSES)
               if name != HELD_OUT
               and os.path.isfile(os.path.join(LICENSES, name)))
# The licences are English: without some other text, no merge would span
# the bytes of an accented letter, a CJK character or an emoji, and a piece
# boundary misplaced among them would give the same ids. A few repeated
# words make such merges (the cases below combine them differently).
probe = os.path.join(out, "unicode-probe.txt")
with open(probe, "w", encoding="utf-8") as f:
    words = ["caf\u00e9", "na\u00efve", "\u00fcber", "\u4f60\u597d", "\u4e16\u754c",
             "\U0001F600\U0001F600", "\U0001F680", "\u0663\u0664", "\u00b2\u00bd",
             "\u2160\u2161", "\u0645\u0631\u062d\u0628\u0627",
             "\u041f\u0440\u0438\u0432\u0435\u0442"]
    # Each word at a line's start too, so merges without a leading space form.
    f.write("\n".join(" ".join(words) for _ in range(100)) + "\n")
train.append(probe)
tokenizer = ByteLevelBPETokenizer()
tokenizer.train(train, vocab_size=1000, min_frequency=2, show_progress=False)
tokenizer.save_model(out)

with open(os.path.join(LICENSES, HELD_OUT), encoding="utf-8") as f:
    held_out = f.read()

cases = [
    held_out,
    # Whitespace runs: trailing, leading, mixed, before words and at the end
    # (\s+(?!\S) against \s+), and Unicode spaces (NBSP, NEL, ideographic).
    "  leading spaces,   three before a word\t\ttabs\n\n\nnewlines   \n",
    "end with spaces   ",
    "\u00a0nbsp\u00a0 and\u0085nel and\u3000ideographic\u2003em space\r\n",
    # Two U+0020 then another space: \s+(?!\S) keeps both U+0020 (one merged
    # token) only if the third is White_Space, as NEL, NBSP and U+3000 are
    # and U+001C (a space to Python's isspace) is not.
    "a  \u0085b c  \u00a0d e  \u3000f g  \u001ch i  \u2028j",
    # Accents, CJK, emoji (four-byte UTF-8), combining marks, other scripts.
    "Caf\u00e9 na\u00efve r\u00e9sum\u00e9 \u00dcber Stra\u00dfe "
    "e\u0301 \u4f60\u597d\u4e16\u754c \u65e5\u672c\u8a9e\u306e\u30c6\u30ad"
    "\u30b9\u30c8 \U0001F600\U0001F680 \U0001F44D\U0001F3FD "
    "\u041f\u0440\u0438\u0432\u0435\u0442 \u0645\u0631\u062d\u0628\u0627",
    # Letters, numbers and emoji glued together: each class its own piece.
    "x\U0001F600y caf\u00e9\u4f60\u597d \U0001F600caf\u00e9 \u0663\u0664\u00fcber "
    "\u2160\u2161\U0001F680 \u00b2\u00bdna\u00efve \u4e16\u754c\u0663\u0664",
    # Digits (ASCII and others), numbers glued to letters and punctuation.
    "In 2024, 3.14159 and 1,000,000 items; v2 x86_64 \u0663\u0664 \u00b2\u00bd "
    "\u2160\u2161",
    # Contractions, upper-case ones (not split off), and stray apostrophes.
    "It's they're we've I'm you'll he'd don't IT'S 'tis o'clock '' 's",
    # Punctuation runs and symbols.
    "!!! ... ?!? --> <|endoftext|> $100 #tag @user (a) [b] {c} \\ / ~",
    "",
]
for k, text in enumerate(cases):
    ids = tokenizer.encode(text).ids
    assert tokenizer.decode(ids) == text, f"HF does not round-trip case {k}"
    with open(os.path.join(out, f"case{k}.txt"), "w", encoding="utf-8",
              newline="") as f:
        f.write(text)
    with open(os.path.join(out, f"case{k}.ids"), "w") as f:
        f.write(" ".join(map(str, ids)) + "\n")
print(f"trained on {len(train)} files: {tokenizer.get_vocab_size()} tokens; "
      f"{len(cases)} cases")
