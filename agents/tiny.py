"""A tiny chat model made locally, for tests and the CPU quickstart: nothing is downloaded.

Why: every layer above the engines (rollouts, evaluation, training) must run end to end on a laptop
CPU and in CI, with the same code path as a real checkpoint. So the tiny model is an ordinary
Hugging Face checkpoint -- a `tokenizers` byte-level BPE with a ChatML-style jinja2 chat template and
a Qwen2-architecture model built from a config -- saved with `save_pretrained` and loaded back with
`AutoTokenizer` / `AutoModelForCausalLM`, exactly like `Qwen/Qwen2.5-0.5B-Instruct` would be.

The tokenizer:
- byte-level BPE (every byte is in the alphabet, so any NFC text round-trips exactly through
  encode/decode), digits split one per token (arithmetic is learnable digit by digit), trained in
  well under a second on generated text covering the quickstart prompts, Python code and the tool
  formats (plus the parsers' instructions and a few task prompts when `toolgym.envs` has them);
- special tokens `<|endoftext|>`, `<|im_start|>`, `<|im_end|>` (end of turn, the eos), `<|pad|>`;
- a chat template with the roles system / user / assistant / tool and a generation prompt:
  `<|im_start|>{role}\\n{content}<|im_end|>\\n` per message, then `<|im_start|>assistant\\n`.

The model is randomly initialised (seeded): it is a tool to exercise the machinery, and the thing the
quickstart trains.
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

EOS = "<|im_end|>"
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", EOS, "<|pad|>"]
ROLES = ("system", "user", "assistant", "tool")

CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{%- if message['role'] not in ['system', 'user', 'assistant', 'tool'] -%}"
    "{{ raise_exception('unknown role ' ~ message['role'] ~ '; use system, user, assistant or tool') }}"
    "{%- endif -%}"
    "{{ '<|im_start|>' ~ message['role'] ~ '\\n' ~ message['content'] ~ '<|im_end|>\\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\\n' }}{%- endif -%}"
)

# GPT-4/Qwen2-style pre-tokenization: digits one by one, words with a leading space, punctuation runs.
_SPLIT_REGEX = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|"
    r"\s*[\r\n]+|\s+(?!\S)|\s+"
)

_WORDS_TEXT = (
    "Compute the value of What is Evaluate Solve Find the answer result number sum product difference "
    "Use the Python tool to check your work Give your final answer in tags You can run code by writing "
    "a block The output of the code will be shown Error Traceback most recent call last line File "
    "integer float list dict return print def for while if else elif in range len import math from "
    "True False None and or not with as class self value total count result answer expression "
    "Countdown target numbers reach using each once sort reverse string words letters count how many "
    "stdout stderr output timed out name is not defined ZeroDivisionError ValueError TypeError"
)
_WORDS = _WORDS_TEXT.split(" ")

_CODE = [
    "print({e})", "x = {e}\nprint(x)", "result = {e}\nprint(result)", "import math\nprint(math.sqrt({a}))",
    "total = 0\nfor i in range({a}):\n    total += i\nprint(total)",
    "def f(n):\n    return n * {a} + {b}\n\nprint(f({b}))", "values = [{a}, {b}, {c}]\nprint(sum(values))",
    "print(sorted([{c}, {a}, {b}]))", "s = 'abc' * {a}\nprint(len(s))",
    "from itertools import permutations\nprint(len(list(permutations(range({c})))))",
]


def _expr(rng: random.Random) -> str:
    ops = ["+", "-", "*", "//", "%"]
    parts = [str(rng.randint(0, 999))]
    for _ in range(rng.randint(1, 4)):
        parts += [rng.choice(ops), str(rng.randint(1, 999))]
    text = " ".join(parts)
    return f"({text})" if rng.random() < 0.2 else text


def _synthetic_corpus(n: int, seed: int) -> list[str]:
    """Generated text covering arithmetic prompts, Python code and the three tool-call formats."""
    rng = random.Random(seed)
    docs = []
    for _ in range(n):
        e = _expr(rng)
        a, b, c = rng.randint(1, 99), rng.randint(1, 99), rng.randint(2, 6)
        code = rng.choice(_CODE).format(e=e, a=a, b=b, c=c)
        words = " ".join(rng.choice(_WORDS) for _ in range(rng.randint(3, 12)))
        docs.append(
            f"{words}. Compute {e}.\n"
            f"Let me compute it.\n```python\n{code}\n```\n"
            f"<code>\n{code}\n</code>\n"
            f'<tool_call>{{"name": "python", "arguments": {{"code": "{code!r}"}}}}</tool_call>\n'
            f"{rng.randint(-99999, 99999)}\n<answer>{rng.randint(-9999, 9999)}</answer>\n"
        )
    return docs


def _toolgym_text() -> list[str]:
    """Parser instructions and a few quickstart prompts, when the environment layer provides them."""
    texts: list[str] = []
    try:
        from toolgym.envs import parsers

        for name in ("fenced", "xml", "json"):
            texts.append(parsers.get_parser(name).instructions)
    except Exception:  # the envs layer is optional at build time; the synthetic corpus suffices
        pass
    try:
        from toolgym.envs import registry

        for task_id in registry.suite_tasks("quickstart", "train"):
            family = registry.make_family(task_id)
            texts += [family.problem("train", i).prompt for i in range(50)]
    except Exception:
        pass
    return texts


def build_tokenizer(corpus: Iterable[str] | None = None, vocab_size: int = 2048, seed: int = 0):
    """A byte-level BPE `PreTrainedTokenizerFast` with the special tokens and the chat template."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    texts = _synthetic_corpus(2000, seed) + _toolgym_text() + list(corpus or [])
    tok = Tokenizer(models.BPE())
    # The same pipeline transformers' Qwen2 tokenizer class rebuilds on load (NFC, its split regex,
    # byte level), so the merges learned here are the merges used after `AutoTokenizer` loads it.
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Split(Regex(_SPLIT_REGEX), behavior="isolated", invert=False),
         pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=None,
        eos_token=EOS,
        pad_token="<|pad|>",
        unk_token=None,
        additional_special_tokens=["<|endoftext|>", "<|im_start|>"],
        chat_template=CHAT_TEMPLATE,
        model_max_length=4096,
        clean_up_tokenization_spaces=False,
    )


def build_tiny_model(
    out_dir: str | Path,
    *,
    hidden_size: int = 256,
    num_layers: int = 4,
    num_heads: int = 4,
    num_kv_heads: int = 2,
    intermediate_size: int = 512,
    vocab_size: int = 2048,
    max_position_embeddings: int = 4096,
    seed: int = 0,
    corpus: Iterable[str] | None = None,
) -> Path:
    """Build, save (safetensors) and return the directory of a tiny Qwen2 chat model (~2.9M params)."""
    import torch
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer(corpus, vocab_size=vocab_size, seed=seed)
    eos_ids = [tokenizer.convert_tokens_to_ids(t) for t in (EOS, "<|endoftext|>")]
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=intermediate_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_kv_heads,
        max_position_embeddings=max_position_embeddings,
        tie_word_embeddings=True,
        bos_token_id=None,
        eos_token_id=eos_ids[0],
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(config).to(torch.float32)
    model.generation_config = GenerationConfig(eos_token_id=eos_ids, pad_token_id=tokenizer.pad_token_id)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    return out


def cached_tiny_model(cache_dir: str | Path | None = None, **kwargs: Any) -> Path:
    """`build_tiny_model` once per (builder source, arguments), reused from a cache directory.

    The cache is `$TOOLGYM_CACHE` (default `~/.cache/toolgym`)/tiny-<hash>; a build goes to a temporary
    directory renamed into place, so concurrent processes never see a half-written model.
    """
    root = Path(cache_dir or os.environ.get("TOOLGYM_CACHE") or Path.home() / ".cache" / "toolgym")
    key = hashlib.sha256((Path(__file__).read_text() + repr(sorted(kwargs.items()))).encode()).hexdigest()
    target = root / f"tiny-{key[:16]}"
    if (target / "config.json").exists():
        return target
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="tiny-build-", dir=root))
    build_tiny_model(tmp, **kwargs)
    try:
        tmp.rename(target)
    except OSError:  # another process won the race: use its build
        shutil.rmtree(tmp, ignore_errors=True)
    return target
