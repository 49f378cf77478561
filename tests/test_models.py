"""Tests for the stage models: transformer causality, KV cache, code layouts, sampling, I/O."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch

from singsong.errors import SingsongError
from singsong.models import codes as L
from singsong.models.codes import Codes
from singsong.models.noise import add_noise, augment_vocals
from singsong.models.sampling import SamplingParams, filter_logits
from singsong.models.seq2seq import CodeLM
from singsong.models.stage1 import Stage1Config, Stage1Model
from singsong.models.stage2 import Stage2Config, Stage2Model
from singsong.modules.transformer import Decoder, Encoder, apply_rotary

VS, VA = 11, 7  # small, different vocabularies: a code of the wrong level would show


def stage1(featurization: str = "S", **kw: object) -> Stage1Model:
    torch.manual_seed(0)
    cfg = Stage1Config.preset(
        "debug", featurization=featurization, semantic_codebook_size=VS, acoustic_codebook_size=VA,
        dim=16, **kw,
    )  # fmt: skip
    model = Stage1Model(cfg).eval()
    if model.lm.time_embed is not None:  # starts at zero (no effect): give it one to test
        assert not model.lm.time_embed.weight.any()
        torch.nn.init.normal_(model.lm.time_embed.weight, std=0.1)
    return model


def stage2(**kw: object) -> Stage2Model:
    torch.manual_seed(0)
    cfg = Stage2Config.preset("debug", acoustic_codebook_size=VA, chunk_frames=3, dim=16, **kw)
    return Stage2Model(cfg).eval()


def sem(c: Codes) -> torch.Tensor:
    assert c.semantic is not None
    return c.semantic


def ac(c: Codes) -> torch.Tensor:
    assert c.acoustic is not None
    return c.acoustic


def vocals(b: int = 2, t: int = 4, seed: int = 1) -> Codes:
    g = torch.Generator().manual_seed(seed)
    return Codes(
        semantic=torch.randint(0, VS, (b, t), generator=g),
        acoustic=torch.randint(0, VA, (b, 12, 2 * t), generator=g),
    )


# --- transformer ---------------------------------------------------------------------------------


def test_decoder_is_causal_by_gradient() -> None:
    torch.manual_seed(0)
    dec = Decoder(dim=16, depth=2, heads=2, mlp="gelu")
    x = torch.randn(1, 6, 16, requires_grad=True)
    memory = torch.randn(1, 5, 16)
    out = dec(x, memory)
    for t in range(6):
        (grad,) = torch.autograd.grad(out[0, t].sum(), x, retain_graph=True)
        assert torch.all(grad[0, t + 1 :] == 0), f"output {t} depends on a later input"
        assert grad[0, : t + 1].abs().sum() > 0


def test_encoder_is_bidirectional_and_ignores_padding() -> None:
    torch.manual_seed(0)
    enc = Encoder(dim=16, depth=2, heads=2)
    x = torch.randn(1, 5, 16, requires_grad=True)
    (grad,) = torch.autograd.grad(enc(x)[0, 0].sum(), x)
    assert grad[0, 4].abs().sum() > 0  # sees the future
    mask = torch.tensor([[True, True, True, False, False]])
    y = torch.cat([x.detach()[:, :3], torch.randn(1, 2, 16)], dim=1)
    torch.testing.assert_close(enc(x, mask)[:, :3], enc(y, mask)[:, :3])


def incremental_logits(
    lm: CodeLM,
    src: L.Flat,
    tgt: L.Flat,
    mask: torch.Tensor | None,
    sizes: list[int],
    times: dict[str, torch.Tensor] | None = None,
) -> torch.Tensor:
    """Teacher-forced logits through the KV cache, feeding blocks of the given sizes."""
    st, tt = (times or {}).get("source_times"), (times or {}).get("target_times")
    memory = lm.encode(src.codes, src.levels, mask, st)
    aligned = lm.aligned_attention
    cache = lm.decoder.start(
        memory, capacity=tgt.codes.shape[1], memory_mask=mask, memory_times=st if aligned else None
    )
    b = tgt.codes.shape[0]
    next_times = None if tt is None else tt[1:]
    inputs = torch.cat(
        [lm._bos(b, memory.device, tt),
         lm._embed_targets(tgt.codes[:, :-1], tgt.levels[:-1], next_times)],
        dim=1,
    )  # fmt: skip
    hs, i = [], 0
    for n in sizes:
        step_times = tt[i : i + n] if aligned and tt is not None else None
        hs.append(lm.decoder.step(inputs[:, i : i + n], cache, step_times))
        i += n
    assert i == inputs.shape[1]
    return lm.level_logits(torch.cat(hs, dim=1), tgt.levels)


# how a model knows when each code sounds: none, the additive time axis, time-aligned
# cross-attention, or both
TIME_MODES = {
    "none": {},
    "time_axis": {"time_axis": True},
    "aligned": {"aligned_attention": True},
    "both": {"time_axis": True, "aligned_attention": True},
    "timed": {"aligned_attention": True, "timed_self_attention": True},
}


@pytest.mark.parametrize("mode", list(TIME_MODES))
@pytest.mark.parametrize("sizes", ["ones", "blocks"])
def test_kv_cache_matches_full_forward_stage1(sizes: str, mode: str) -> None:
    model = stage1("SA", **TIME_MODES[mode])
    v, inst = vocals(), vocals(seed=2)
    src, tgt = model.source(v), model.target(inst)
    full = model(v, inst)
    n = tgt.codes.shape[1]
    steps = [1] * n if sizes == "ones" else [5, 1, 1, n - 7]
    times = model._times(v.frames, src.codes.device)
    assert bool(times) == (mode != "none")
    if mode == "time_axis":  # the time signal matters: same codes at other times, other logits
        shifted = {k: t + 1 for k, t in times.items()}
        assert not torch.allclose(
            model.lm(src.codes, src.levels, tgt.codes, tgt.levels, **shifted), full
        )
    if mode in ("aligned", "timed"):  # only the offset between the two sequences' times matters
        both = {k: t + 7 for k, t in times.items()}
        source_only = times | {"source_times": times["source_times"] + 1}
        lm = model.lm
        torch.testing.assert_close(lm(src.codes, src.levels, tgt.codes, tgt.levels, **both), full)
        assert not torch.allclose(
            lm(src.codes, src.levels, tgt.codes, tgt.levels, **source_only), full
        )
    torch.testing.assert_close(
        incremental_logits(model.lm, src, tgt, None, steps, times), full, atol=1e-5, rtol=0
    )


@pytest.mark.parametrize("aligned", [False, True])
def test_kv_cache_matches_full_forward_stage2(aligned: bool) -> None:
    model = stage2(aligned_attention=aligned)
    grid = ac(vocals(t=4))
    src, mask = model.source(grid[:, :4])
    tgt = model.target(grid[:, 4:])
    full = model(grid[:, :4], grid[:, 4:])
    times = model._times(src.codes.device)
    assert bool(times) == aligned
    if aligned:  # frame-major chunks: the coarse and fine codes of frame u both sit at time u
        q, f = model.config.coarse_levels, model.config.fine_levels
        assert times["source_times"].tolist() == [u for u in range(3) for _ in range(q)]
        assert times["target_times"].tolist() == [u for u in range(3) for _ in range(f)]
    inc = incremental_logits(model.lm, src, tgt, mask, [1] * tgt.codes.shape[1], times)
    torch.testing.assert_close(inc, full, atol=1e-5, rtol=0)


@pytest.mark.parametrize("mode", list(TIME_MODES))
def test_greedy_generation_is_consistent_with_forward(mode: str) -> None:
    model = stage1("S", **TIME_MODES[mode]).double()
    v = vocals(b=2, t=3)
    out = model.generate(v, params=SamplingParams(temperature=0))
    logits = model(v, out)
    assert torch.equal(logits.argmax(-1), model.target(out).codes)
    # with a prompt (fed as one block through the cache), the free positions stay greedy
    prompt = Codes(semantic=(sem(out)[:, :1] + 1) % VS, acoustic=(ac(out)[:, :, :2] + 1) % VA)
    cont = model.generate(v, params=SamplingParams(temperature=0), prompt=prompt)
    tgt = model.target(cont)
    free = torch.ones_like(tgt.levels, dtype=torch.bool)
    free[:1] = False
    free[3 : 3 + 8] = False  # the prompt's coarse codes: 2 frames x 4 levels after 3 semantic
    assert torch.equal(model(v, cont).argmax(-1)[:, free], tgt.codes[:, free])
    fine_model = stage2(aligned_attention=mode == "aligned").double()
    fine = fine_model.generate(ac(out), params=SamplingParams(temperature=0))
    assert torch.equal(fine_model(ac(out), fine).argmax(-1), fine_model.target(fine).codes)


def test_generation_on_given_semantic_codes_samples_only_the_coarse_codes() -> None:
    model = stage1("S", aligned_attention=True).double()
    v, plan = vocals(b=2, t=3), vocals(b=2, t=3, seed=5)
    params = SamplingParams(temperature=0, takes=2)
    out = model.generate(v, params=params, semantic=sem(plan))
    assert torch.equal(sem(out), sem(plan).repeat_interleave(2, dim=0))
    assert ac(out).shape == (4, model.config.coarse_levels, 6)
    # greedy on the given codes: the coarse codes are what the forward pass predicts there
    rows = Codes(semantic=sem(v).repeat_interleave(2, dim=0))
    tgt = model.target(out)
    coarse = tgt.levels > 0
    assert torch.equal(model(rows, out).argmax(-1)[:, coarse], tgt.codes[:, coarse])
    assert not torch.equal(ac(out), ac(model.generate(v, params=params)))  # the plan matters
    with pytest.raises(SingsongError, match="do not fit"):
        model.generate(v, params=params, semantic=sem(plan)[:, :2])


def test_aligned_attention_needs_times_and_reads_the_vocals_of_now() -> None:
    model = stage1("S", aligned_attention=True)
    v, inst = vocals(b=1, t=6), vocals(b=1, t=6, seed=2)
    src, tgt = model.source(v), model.target(inst)
    with pytest.raises(SingsongError, match="pass the positions' times"):
        model.lm(src.codes, src.levels, tgt.codes, tgt.levels)
    with pytest.raises(ValueError, match="needs both"):
        model.lm.decoder(torch.zeros(1, 2, 16), torch.zeros(1, 3, 16), times=torch.zeros(2))
    with pytest.raises(SingsongError, match="needs aligned_attention"):
        Stage1Config.preset("debug", timed_self_attention=True)
    timed = stage1("S", aligned_attention=True, timed_self_attention=True).lm.decoder
    with pytest.raises(ValueError, match="self-attention is timed"):
        timed(torch.zeros(1, 2, 16), torch.zeros(1, 3, 16))
    cache = model.lm.decoder.start(torch.zeros(1, 3, 16), capacity=2, memory_times=torch.zeros(3))
    with pytest.raises(ValueError, match="exactly when"):
        model.lm.decoder.step(torch.zeros(1, 1, 16), cache)
    # the cross-attention itself is position-aware: content-only, every memory key scores the
    # same for identical memory rows; time-aligned, the scores depend on the time offset
    cross = model.lm.decoder.blocks[0].cross
    memory, x = torch.randn(1, 1, 16).expand(1, 5, 16), torch.randn(1, 1, 16)
    rope = model.lm.decoder.rotary
    k, _ = cross.memory_kv(memory, rope(torch.arange(5.0)))
    q = cross.q(x).view(1, 1, 2, 8).transpose(1, 2)
    scores = apply_rotary(q, rope(torch.tensor([2.0]))) @ k.transpose(-1, -2)  # [1, H, 1, 5]
    assert scores.std(dim=-1).min() > 1e-4
    plain, _ = cross.memory_kv(memory)
    assert torch.allclose((q @ plain.transpose(-1, -2)).std(dim=-1), torch.zeros(()), atol=1e-6)


# --- layouts -------------------------------------------------------------------------------------


@pytest.mark.parametrize("featurization", ["S", "A", "SA"])
def test_times_follow_the_layouts(featurization: str) -> None:
    t, q = 3, 2
    v = vocals(b=1, t=t)
    src = L.featurize(featurization, v, coarse_levels=q)
    times = L.source_times(featurization, t, coarse_levels=q)
    assert times.shape == src.levels.shape
    assert times.min() == 0 and times.max() == (t - 1 if featurization == "S" else t - 0.5)
    assert (times.diff() >= 0).all()  # every layout runs forward in time
    # each position's time is that of its frame: semantic at t, acoustic frame u at u / 2
    tgt = L.stage1_target(sem(v), ac(v)[:, :q])
    target_times = L.stage1_times(t, q)
    assert target_times.shape == tgt.levels.shape
    assert target_times[:t].tolist() == [0.0, 1.0, 2.0]
    assert target_times[t:].tolist() == [u / 2 for u in range(2 * t) for _ in range(q)]


@pytest.mark.parametrize("t", [1, 2, 5])
@pytest.mark.parametrize("q", [1, 4])
def test_stage1_layout_round_trips(t: int, q: int) -> None:
    sem = torch.randint(0, VS, (3, t))
    coarse = torch.randint(0, VA, (3, q, 2 * t))
    flat = L.stage1_target(sem, coarse)
    assert flat.codes.shape == (3, t + 2 * t * q) and flat.levels.shape == (t + 2 * t * q,)
    back_sem, back_coarse = L.split_stage1(flat.codes, frames=t, coarse_levels=q)
    assert torch.equal(back_sem, sem) and torch.equal(back_coarse, coarse)
    # semantic first, then frame 0's levels 1..q, then frame 1's
    assert torch.equal(flat.codes[:, :t], sem)
    assert torch.equal(flat.codes[:, t : t + q], coarse[:, :, 0])
    assert flat.levels.tolist() == [0] * t + list(range(1, q + 1)) * 2 * t


@pytest.mark.parametrize("u", [1, 3, 8])
@pytest.mark.parametrize("f", [1, 8])
def test_fine_layout_round_trips(u: int, f: int) -> None:
    fine = torch.randint(0, VA, (2, f, u))
    flat = L.fine_target(fine)
    assert flat.codes.shape == (2, u * f) and flat.levels.tolist() == list(range(f)) * u
    assert torch.equal(L.split_fine(flat.codes, f), fine)


@pytest.mark.parametrize("t", [1, 4, 7])
def test_stage2_chunking_round_trips(t: int) -> None:
    model = stage2()  # chunks of 3 frames
    x = torch.randint(0, VA, (2, 8, t))
    chunks = model._chunks(x, fill=-1)
    assert chunks.shape == (2 * -(-t // 3), 8, 3)
    assert torch.equal(model._unchunk(chunks, t), x)


@pytest.mark.parametrize("featurization", ["S", "A", "SA"])
@pytest.mark.parametrize("t", [1, 3])
def test_featurizations_shapes_alignment_and_round_trip(featurization: str, t: int) -> None:
    v = vocals(b=2, t=t)
    assert sem(v).shape[1] * 2 == ac(v).shape[2]  # T_sem * 2 == T_ac
    flat = L.featurize(featurization, v, coarse_levels=4)
    length = {"S": t, "A": 8 * t, "SA": 9 * t}[featurization]
    assert flat.codes.shape == (2, length) and flat.levels.shape == (length,)
    vocab = L.input_vocab(featurization, VS, VA, 4)
    assert int(flat.levels.max()) < len(vocab.sizes)
    back = L.split_featurization(featurization, flat.codes, coarse_levels=4)
    if "S" in featurization:
        assert torch.equal(sem(back), sem(v))
    if "A" in featurization:
        assert torch.equal(ac(back), ac(v)[:, :4])
    if featurization == "SA":  # frame 0 = s[0], a[0, 1..4], a[1, 1..4]
        first = [sem(v)[0, 0], *ac(v)[0, :4, 0], *ac(v)[0, :4, 1]]
        assert flat.codes[0, :9].tolist() == [int(c) for c in first]
        assert flat.levels[:9].tolist() == [0, 1, 2, 3, 4, 1, 2, 3, 4]


# --- sampling ------------------------------------------------------------------------------------


def test_generation_is_deterministic_under_a_seed_and_varies_across_seeds() -> None:
    model = stage1("SA")
    v = vocals()
    a = model.generate(v, params=SamplingParams(seed=3))
    b = model.generate(v, params=SamplingParams(seed=3))
    c = model.generate(v, params=SamplingParams(seed=4))
    assert torch.equal(sem(a), sem(b)) and torch.equal(ac(a), ac(b))
    assert not torch.equal(ac(a), ac(c))
    fine_model = stage2()
    f1 = fine_model.generate(ac(a), params=SamplingParams(seed=3))
    f2 = fine_model.generate(ac(a), params=SamplingParams(seed=3))
    f3 = fine_model.generate(ac(a), params=SamplingParams(seed=4))
    assert torch.equal(f1, f2) and not torch.equal(f1, f3)


@pytest.mark.parametrize("featurization", ["S", "A"])
def test_guidance_pushes_away_from_the_negative_source(featurization: str) -> None:
    model = stage1(featurization, aligned_attention=True).double()
    v, other = vocals(b=2, t=3), vocals(b=2, t=3, seed=9)
    greedy = SamplingParams(temperature=0)
    plain = model.generate(v, params=greedy)
    # the negative equal to the source: base + g * (logits - base) = logits, whatever g
    same = model.generate(v, params=replace(greedy, guidance=4.0), negative=v)
    assert torch.equal(sem(same), sem(plain)) and torch.equal(ac(same), ac(plain))
    # guidance 0 samples what the negative alone would give
    zero = model.generate(v, params=replace(greedy, guidance=0.0), negative=other)
    alone = model.generate(other, params=greedy)
    assert torch.equal(sem(zero), sem(alone)) and torch.equal(ac(zero), ac(alone))
    with pytest.raises(SingsongError, match="negative source"):
        model.generate(v, params=replace(greedy, guidance=2.0))
    with pytest.raises(SingsongError, match="guidance"):
        SamplingParams(guidance=float("nan"))


def test_takes_in_one_batch_stay_in_their_vocabularies() -> None:
    model, fine_model = stage1("A"), stage2()
    v = vocals(b=2, t=5)
    out = model.generate(v, params=SamplingParams(seed=0, takes=3, top_p=0.9))
    assert sem(out).shape == (6, 5) and ac(out).shape == (6, 4, 10)
    assert int(sem(out).min()) >= 0 and int(sem(out).max()) < VS
    assert int(ac(out).min()) >= 0 and int(ac(out).max()) < VA
    assert len({tuple(r.tolist()) for r in ac(out).flatten(1)}) == 6  # takes differ
    fine = fine_model.generate(ac(out), params=SamplingParams(seed=0, takes=2, top_k=3))
    assert fine.shape == (12, 8, 10)
    assert int(fine.min()) >= 0 and int(fine.max()) < VA


def test_top_k_one_is_greedy() -> None:
    model = stage1("S")
    v = vocals()
    greedy = model.generate(v, params=SamplingParams(temperature=0))
    topk = model.generate(v, params=SamplingParams(top_k=1, seed=9, temperature=1.7))
    assert torch.equal(sem(greedy), sem(topk))
    assert torch.equal(ac(greedy), ac(topk))


def test_filter_logits() -> None:
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    assert torch.isinf(filter_logits(logits, top_k=2)[0, 2:]).all()
    kept = ~torch.isinf(filter_logits(logits, top_p=0.7))
    assert kept.tolist() == [[True, True, False, False]]  # 0.5 < 0.7 <= 0.8
    assert (~torch.isinf(filter_logits(logits, top_p=0.01))).sum() == 1


def test_prompts_are_kept_and_continued() -> None:
    model, fine_model = stage1("S"), stage2()
    v = vocals(b=2, t=5)
    prev = model.generate(vocals(b=2, t=2, seed=7), params=SamplingParams(seed=1))
    out = model.generate(v, params=SamplingParams(seed=2, takes=2), prompt=prev)
    for row in range(4):  # row b * takes + n continues prompt b
        assert torch.equal(sem(out)[row, :2], sem(prev)[row // 2])
        assert torch.equal(ac(out)[row, :, :4], ac(prev)[row // 2])
    fine_prompt = torch.randint(0, VA, (4, 8, 4))
    fine = fine_model.generate(ac(out), params=SamplingParams(seed=0), prompt=fine_prompt)
    assert torch.equal(fine[:, :, :4], fine_prompt)


# --- training helpers ----------------------------------------------------------------------------


def test_loss_and_per_level_accuracy_from_streams() -> None:
    v, inst = vocals(b=2, t=4), vocals(b=2, t=4, seed=5)
    noisy = vocals(b=2, t=4, seed=9)
    batch = {
        "vocals_semantic": sem(v)[:, None],
        "vocals_acoustic": ac(v),
        "vocals_noisy_semantic": sem(noisy)[:, None],
        "vocals_noisy_acoustic": ac(noisy),
        "instrumental_semantic": sem(inst)[:, None],
        "instrumental_acoustic": ac(inst),
    }
    out = stage1("SA").loss_on_streams(batch)
    # the default model reads the noisy vocals, a vocal_noise=False one the clean vocals
    clean = stage1("SA", vocal_noise=False)
    assert torch.equal(out.loss, stage1("SA").loss(noisy, inst).loss)
    assert torch.equal(clean.loss_on_streams(batch).loss, clean.loss(v, inst).loss)
    assert not torch.equal(out.loss, clean.loss_on_streams(batch).loss)
    with pytest.raises(SingsongError, match="no vocals_noisy"):
        stage1("SA").loss_on_streams({k: x for k, x in batch.items() if "noisy" not in k})
    assert out.loss.ndim == 0 and torch.isfinite(out.loss)
    assert out.count.tolist() == [8] + [16] * 4
    assert set(out.accuracy()) == {
        "semantic",
        "acoustic1",
        "acoustic2",
        "acoustic3",
        "acoustic4",
        "all",
    }
    out2 = stage2().loss_on_streams(batch)
    assert out2.count.tolist() == [16] * 8  # 8 frames in chunks of 3: padding is not scored
    assert out2.level_names[0] == "acoustic5"


def test_semantic_loss_weight_weights_the_semantic_positions() -> None:
    v, inst = vocals(b=2, t=4), vocals(b=2, t=4, seed=5)
    plain, weighted = stage1("S"), stage1("S", semantic_loss_weight=3.0)
    weighted.load_state_dict(plain.state_dict())
    src, tgt = plain.source(v), plain.target(inst)
    logits = plain.lm(src.codes, src.levels, tgt.codes, tgt.levels)
    per = torch.nn.functional.cross_entropy(logits.transpose(1, 2), tgt.codes, reduction="none")
    w = torch.where(tgt.levels == 0, 3.0, 1.0).expand_as(per)
    expected = (per * w).sum() / w.sum()
    torch.testing.assert_close(weighted.loss(v, inst).loss, expected)
    torch.testing.assert_close(plain.loss(v, inst).loss, per.mean())
    with pytest.raises(SingsongError, match="semantic_loss_weight"):
        Stage1Config(semantic_loss_weight=0.0)


def test_target_dropout_acts_in_training_only() -> None:
    v, inst = vocals(b=2, t=4), vocals(b=2, t=4, seed=5)
    plain, dropped = stage1("S"), stage1("S", target_dropout=0.5)
    dropped.load_state_dict(plain.state_dict())
    # eval mode (and so generation) sees every code: same logits as without dropout
    torch.testing.assert_close(dropped(v, inst), plain(v, inst))
    dropped.train()
    torch.manual_seed(0)
    a = dropped(v, inst)
    torch.manual_seed(0)
    assert torch.equal(a, dropped(v, inst))  # seeded
    assert not torch.allclose(a, plain(v, inst))
    # the first position sees only BOS either way: dropout hides inputs, never targets
    torch.testing.assert_close(a[:, 0], plain(v, inst)[:, 0])
    with pytest.raises(SingsongError, match="target_dropout"):
        Stage1Config(target_dropout=1.0)


def test_listening_gaps_are_zero_without_vocals_and_positive_with() -> None:
    v, inst = vocals(b=3, t=4), vocals(b=3, t=4, seed=5)
    batch = {"vocals_noisy_semantic": sem(v)[:, None], "instrumental_semantic": sem(inst)[:, None],
             "instrumental_acoustic": ac(inst)}  # fmt: skip
    model = stage1("S")
    out = model.loss_on_streams(batch)
    gaps = model.validation_sums(batch, out) / out.count.sum()
    assert gaps.shape == (3,) and len(model.validation_sum_names) == 3
    assert gaps[1] != 0  # a random model's loss depends on its source
    # windows shorter than the first second: the start gap covers every semantic position
    torch.testing.assert_close(gaps[2], gaps[1])
    # a model whose encoder output is zeroed cannot tell the vocals apart: both gaps are zero
    deaf = stage1("S")
    torch.nn.init.zeros_(deaf.lm.source_embed.weight)
    out = deaf.loss_on_streams(batch)
    torch.testing.assert_close(
        deaf.validation_sums(batch, out), torch.zeros(3, dtype=torch.float64)
    )


# --- release artifacts ---------------------------------------------------------------------------


def test_save_load_round_trip(tmp_path: Path) -> None:
    model, fine_model = stage1("SA"), stage2()
    v = vocals()
    p = SamplingParams(seed=5, takes=2)
    model.save_pretrained(tmp_path / "s1")
    fine_model.save_pretrained(tmp_path / "s2")
    loaded, loaded2 = (
        Stage1Model.from_pretrained(tmp_path / "s1"),
        Stage2Model.from_pretrained(tmp_path / "s2"),
    )
    assert loaded.config == model.config and loaded2.config == fine_model.config
    a, b = model.generate(v, params=p), loaded.generate(v, params=p)
    assert torch.equal(ac(a), ac(b))
    assert torch.equal(fine_model.generate(ac(a), params=p), loaded2.generate(ac(a), params=p))
    with pytest.raises(SingsongError, match="stage1"):
        Stage2Model.from_pretrained(tmp_path / "s1")
    Stage1Model(Stage1Config.preset("debug", dim=64, heads=2)).save_pretrained(tmp_path / "big")
    (tmp_path / "big" / "model.safetensors").replace(tmp_path / "s1" / "model.safetensors")
    with pytest.raises(SingsongError, match="do not fit"):
        Stage1Model.from_pretrained(tmp_path / "s1")


# --- bad input -----------------------------------------------------------------------------------


def test_noise_is_deterministic_at_the_asked_snr() -> None:
    wav = torch.sin(torch.linspace(0, 2000, 32000))[None].repeat(2, 1)
    a = add_noise(wav, 10.0, torch.Generator().manual_seed(0))
    b = add_noise(wav, 10.0, torch.Generator().manual_seed(0))
    assert torch.equal(a, b)
    snr = 10 * torch.log10(wav.pow(2).mean(-1) / (a - wav).pow(2).mean(-1))
    assert torch.allclose(snr, torch.full((2,), 10.0), atol=0.3)
    assert torch.equal(add_noise(torch.zeros(100), 0.0, torch.Generator()), torch.zeros(100))
    noisy = augment_vocals(wav, torch.Generator().manual_seed(1), low=5, high=6)
    snr = 10 * torch.log10(wav.pow(2).mean(-1) / (noisy - wav).pow(2).mean(-1))
    assert ((snr > 4.7) & (snr < 6.3)).all()


def test_clear_errors_on_bad_input() -> None:
    model = stage1("SA")
    v = vocals(b=2, t=4)
    with pytest.raises(SingsongError, match="unknown vocal featurization"):
        Stage1Config(featurization="X")
    with pytest.raises(SingsongError, match="unknown vocal featurization"):
        L.featurize("B", v, coarse_levels=4)
    with pytest.raises(SingsongError, match="expected"):  # wrong shape
        model.generate(Codes(semantic=sem(v)[:, None], acoustic=ac(v)), params=SamplingParams())
    with pytest.raises(SingsongError, match="not aligned"):
        model.generate(Codes(semantic=sem(v), acoustic=ac(v)[..., :-2]), params=SamplingParams())
    with pytest.raises(SingsongError, match="do not match"):
        model(v, vocals(b=2, t=3))
    with pytest.raises(SingsongError, match="out of range"):
        model(Codes(semantic=sem(v) + VS, acoustic=ac(v)), v)
    with pytest.raises(SingsongError, match="empty"):
        model(vocals(b=2, t=0), vocals(b=2, t=0))
    with pytest.raises(SingsongError, match="vocal semantic codes are required"):
        stage1("S").generate(Codes(acoustic=ac(v)), params=SamplingParams())
    with pytest.raises(SingsongError, match="prompt"):
        model.generate(v, params=SamplingParams(), prompt=vocals(b=2, t=5))
    with pytest.raises(SingsongError, match="do not match"):
        stage2()(ac(v)[:, :4], ac(v)[:, 4:, :-2])
    with pytest.raises(SingsongError, match="levels"):
        stage2().generate(ac(v)[:, :2], params=SamplingParams())
    with pytest.raises(SingsongError, match="unknown stage-1 preset"):
        Stage1Config.preset("huge")
    with pytest.raises(SingsongError, match="top_p"):
        SamplingParams(top_p=0)
    with pytest.raises(SingsongError, match="takes"):
        SamplingParams(takes=0)


@pytest.mark.parametrize("featurization", ["S", "A"])
def test_semantic_features_inform_every_semantic_code(featurization: str, tmp_path: Path) -> None:
    model = stage1(featurization, semantic_features=5, aligned_attention=True)
    lm = model.lm
    assert lm.semantic_table is not None and (lm.source_features is None) == (featurization == "A")
    with pytest.raises(SingsongError, match="does not fit"):
        model.set_semantic_features(torch.zeros(VS, 4))
    v, inst = vocals(b=1, t=4), vocals(b=1, t=4, seed=2)
    src, tgt = model.source(v), model.target(inst)
    times = model._times(v.frames, src.codes.device)
    memory = lm.encode(src.codes, src.levels, None, times["source_times"])
    before = model(v, inst)
    model.set_semantic_features(torch.randn(VS, 5))
    after = model(v, inst)
    assert not torch.allclose(before, after)  # the decoder reads the table, in and out
    # the encoder reads it only where the vocals come as semantic codes
    memory_after = lm.encode(src.codes, src.levels, None, times["source_times"])
    assert torch.allclose(memory, memory_after) == (featurization == "A")
    # saved with the weights, cached decoding equals the full pass, greedy decoding is consistent
    model.save_pretrained(tmp_path / "m")
    loaded = Stage1Model.from_pretrained(tmp_path / "m").eval()
    torch.testing.assert_close(loaded(v, inst), after)
    inc = incremental_logits(lm, src, tgt, None, [1] * tgt.codes.shape[1], times)
    torch.testing.assert_close(inc, after, atol=1e-5, rtol=0)
    out = model.double().generate(v, params=SamplingParams(temperature=0))
    assert torch.equal(model(v, out).argmax(-1), model.target(out).codes)
    # a hidden (dropped-out) decoder input hides its code's features too
    lm.train()
    lm.target_dropout = 0.999
    x = lm._embed_targets(tgt.codes, tgt.levels, None)
    bos = lm.target_embed.weight[lm.bos]
    assert torch.isclose(x, bos.expand_as(x)).all(-1).float().mean() > 0.95
    with pytest.raises(SingsongError, match="semantic_features 0"):
        stage1("S").set_semantic_features(torch.zeros(VS, 5))
