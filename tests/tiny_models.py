"""Tiny random-init models of every supported architecture, for fast offline tests."""

import torch
from torch import nn
from transformers import (
    BertConfig,
    BertForSequenceClassification,
    DeiTConfig,
    DeiTForImageClassification,
    DistilBertConfig,
    DistilBertForSequenceClassification,
    RobertaConfig,
    RobertaForSequenceClassification,
    ViTConfig,
    ViTForImageClassification,
)

VOCAB = 60
CLS_ID, SEP_ID, PAD_ID, MASK_ID = 2, 3, 1, 4
SPECIAL_IDS = [PAD_ID, CLS_ID, SEP_ID, MASK_ID]
TEXT_ARCHS = ("bert", "roberta", "distilbert")
IMAGE_ARCHS = ("vit", "deit")
IMAGE_SIZE, PATCH = 16, 4
# the small BERT over the MiniLM vocabulary (fixtures small_bert and small_bert_dir in conftest.py)
SMALL_BERT = dict(
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=2,
    intermediate_size=64,
    max_position_embeddings=128,
    num_labels=2,
)
BINARY_LABELS = dict(id2label={0: "neg", 1: "pos"}, label2id={"neg": 0, "pos": 1})


def tiny_text_model(arch: str, num_labels: int = 3, seed: int = 0, layers: int = 2):
    """A random-init classifier; HF's default (sdpa) attention, eval mode."""
    torch.manual_seed(seed)
    common = dict(vocab_size=VOCAB, num_labels=num_labels, pad_token_id=PAD_ID)
    if arch == "bert":
        cfg = BertConfig(
            hidden_size=16,
            num_hidden_layers=layers,
            num_attention_heads=2,
            intermediate_size=32,
            max_position_embeddings=64,
            **common,
        )
        model = BertForSequenceClassification(cfg)
    elif arch == "roberta":
        cfg = RobertaConfig(
            hidden_size=16,
            num_hidden_layers=layers,
            num_attention_heads=2,
            intermediate_size=32,
            max_position_embeddings=70,
            **common,
        )
        model = RobertaForSequenceClassification(cfg)
    elif arch == "distilbert":
        cfg = DistilBertConfig(
            dim=16, n_layers=layers, n_heads=2, hidden_dim=32, max_position_embeddings=64, **common
        )
        model = DistilBertForSequenceClassification(cfg)
    else:
        raise ValueError(arch)
    return model.eval()


def tiny_image_model(arch: str, num_labels: int = 4, seed: int = 0, layers: int = 2, image_size: int = IMAGE_SIZE):
    torch.manual_seed(seed)
    common = dict(
        image_size=image_size,
        patch_size=PATCH,
        hidden_size=16,
        num_hidden_layers=layers,
        num_attention_heads=2,
        intermediate_size=32,
        num_labels=num_labels,
    )
    if arch == "vit":
        model = ViTForImageClassification(ViTConfig(**common))
    elif arch == "deit":
        model = DeiTForImageClassification(DeiTConfig(**common))
    else:
        raise ValueError(arch)
    return model.eval()


def vocabulary_bert(tokenizer, seed: int = 0, **config):
    """A random-init BERT classifier over a real tokenizer's vocabulary; HF's default attention, eval mode.

    ``config`` holds the BertConfig's sizes and labels; ``vocab_size`` and ``pad_token_id`` default to the
    tokenizer's.
    """
    torch.manual_seed(seed)
    config.setdefault("vocab_size", tokenizer.vocab_size)
    config.setdefault("pad_token_id", tokenizer.pad_token_id)
    return BertForSequenceClassification(BertConfig(**config)).eval()


def save_model_dir(model, tokenizer, path):
    """Save ``model`` and ``tokenizer`` to ``path``, a local model directory as the command line reads it."""
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def text_batch(seed: int = 0, batch: int = 3, length: int = 9):
    """[CLS] w ... w [SEP] [PAD]..., with different lengths per example."""
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, VOCAB, (batch, length), generator=gen)
    mask = torch.ones(batch, length, dtype=torch.long)
    for b in range(batch):
        real = length - (b % 3) * 2
        ids[b, 0] = CLS_ID
        ids[b, real - 1] = SEP_ID
        ids[b, real:] = PAD_ID
        mask[b, real:] = 0
    return ids, mask


def image_batch(seed: int = 0, batch: int = 2):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 3, IMAGE_SIZE, IMAGE_SIZE, generator=gen)


class ToyAttention(nn.Module):
    """A timm-like attention block: the probabilities pass through `attn_drop`."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.attn_drop = nn.Dropout(0.0)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        b, t, d = x.shape
        q, k, v = self.qkv(x).reshape(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        attn = (q @ k.transpose(-2, -1)) * (d // self.heads) ** -0.5
        attn = self.attn_drop(attn.softmax(dim=-1))
        return self.proj((attn @ v).transpose(1, 2).reshape(b, t, d))


class ToyTransformer(nn.Module):
    """A non-Hugging Face token classifier: position 0 is a learned class token."""

    def __init__(
        self, vocab: int = VOCAB, dim: int = 8, heads: int = 2, layers: int = 2, classes: int = 2
    ) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.cls = nn.Parameter(torch.randn(1, 1, dim))
        self.blocks = nn.ModuleList(ToyAttention(dim, heads) for _ in range(layers))
        self.head = nn.Linear(dim, classes)

    def forward(self, ids):
        x = torch.cat([self.cls.expand(ids.shape[0], -1, -1), self.embed(ids)], dim=1)
        for block in self.blocks:
            x = x + block(x)
        return self.head(x[:, 0])


#: Architectures whose attention runs through transformers' registry (the fused capture) and those that
#: do not (DeBERTa-v2, MPNet: the hook capture), as built by :func:`zoo_model`.
REGISTRY_TEXT_ARCHS = (
    "bert",
    "roberta",
    "xlm-roberta",
    "electra",
    "distilbert",
    "albert",
    "modernbert",
    "gpt2",
    "llama",
    "bart",
)
HOOK_TEXT_ARCHS = ("deberta-v2", "mpnet")


def zoo_model(arch: str, num_labels: int = 3, seed: int = 0):
    """A tiny random-init sequence classifier of any architecture (transformers' ``AutoConfig.for_model``),
    with this module's token ids; HF's default attention, eval mode."""
    from transformers import AutoConfig, AutoModelForSequenceClassification

    torch.manual_seed(seed)
    sizes = dict(hidden_size=16, num_hidden_layers=2, num_attention_heads=4, intermediate_size=32)
    ids = dict(pad_token_id=PAD_ID, bos_token_id=CLS_ID, eos_token_id=SEP_ID)
    extra = {
        "electra": dict(embedding_size=16),
        "distilbert": dict(dim=16, n_layers=2, n_heads=4, hidden_dim=32),
        "albert": dict(embedding_size=8, num_hidden_layers=3),  # one shared attention module, 3 calls
        "modernbert": dict(
            cls_token_id=CLS_ID, sep_token_id=SEP_ID, global_attn_every_n_layers=2, local_attention=4
        ),
        "gpt2": dict(n_embd=16, n_layer=2, n_head=4),
        "llama": dict(num_key_value_heads=2),  # grouped-query attention
        "bart": dict(
            d_model=16,
            encoder_layers=2,
            decoder_layers=2,
            encoder_attention_heads=4,
            decoder_attention_heads=4,
            encoder_ffn_dim=32,
            decoder_ffn_dim=32,
            decoder_start_token_id=SEP_ID,
            forced_eos_token_id=None,
        ),
    }.get(arch, {})
    settings = {**sizes, **ids, **extra}
    config = AutoConfig.for_model(
        arch, vocab_size=VOCAB, max_position_embeddings=64, num_labels=num_labels, **settings
    )
    return AutoModelForSequenceClassification.from_config(config).eval()


def grouped_albert(groups: int = 2, layers: int = 4, num_labels: int = 3, seed: int = 0):
    """A tiny ALBERT classifier with ``groups`` shared layer groups over ``layers`` layers: each group's one
    attention module is called ``layers // groups`` times per forward pass; HF's default attention, eval mode."""
    from transformers import AlbertConfig, AlbertForSequenceClassification

    torch.manual_seed(seed)
    config = AlbertConfig(
        vocab_size=VOCAB,
        embedding_size=8,
        hidden_size=16,
        num_hidden_layers=layers,
        num_hidden_groups=groups,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=64,
        num_labels=num_labels,
        pad_token_id=PAD_ID,
        bos_token_id=CLS_ID,
        eos_token_id=SEP_ID,
    )
    return AlbertForSequenceClassification(config).eval()


#: Words of :func:`tiny_word_tokenizer` after its special tokens ``<pad> <unk> <s> </s>`` (ids 0..3).
LM_WORDS = tuple("abcdefghijklmnopqrstuvwxyz") + tuple("0123456789") + ("=", ",", ";", "the", "cat", "sat")


def tiny_word_tokenizer(bos: bool = True):
    """A fast word-level tokenizer (whitespace split, offsets), built offline: ``<pad> <unk> <s> </s>`` then
    :data:`LM_WORDS`; with ``bos`` every encoded text starts with ``<s>`` (Llama-style)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    words = ["<pad>", "<unk>", "<s>", "</s>", *LM_WORDS]
    backend = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    if bos:
        backend.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 2)])
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token="<pad>",
        unk_token="<unk>",
        bos_token="<s>",
        eos_token="</s>",
        clean_up_tokenization_spaces=False,
    )


def tiny_causal_lm(arch: str = "gpt2", seed: int = 0, vocab: int = 4 + len(LM_WORDS), layers: int = 2):
    """A random-init causal language model (``gpt2`` or ``llama`` with grouped-query attention) over
    :func:`tiny_word_tokenizer`'s ids; HF's default (sdpa) attention, eval mode."""
    from transformers import AutoConfig, AutoModelForCausalLM

    torch.manual_seed(seed)
    ids = dict(pad_token_id=0, bos_token_id=2, eos_token_id=3)
    sizes = {
        "gpt2": dict(n_embd=16, n_layer=layers, n_head=4),
        "llama": dict(
            hidden_size=16,
            num_hidden_layers=layers,
            num_attention_heads=4,
            num_key_value_heads=2,
            intermediate_size=32,
        ),
    }[arch]
    config = AutoConfig.for_model(arch, vocab_size=vocab, max_position_embeddings=64, **ids, **sizes)
    return AutoModelForCausalLM.from_config(config).eval()
