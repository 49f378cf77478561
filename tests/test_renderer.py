"""The renderer (plan -> coarse codes by iterative unmasking) on tiny debug models."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from singsong.errors import SingsongError
from singsong.models import Codes, RendererConfig, RendererModel, SamplingParams

SEM, AC = 32, 48  # small vocabularies: a debug renderer learns them in a few steps


def model(**overrides: object) -> RendererModel:
    torch.manual_seed(0)
    cfg = RendererConfig.preset("debug", semantic_codebook_size=SEM, acoustic_codebook_size=AC)
    return RendererModel(RendererConfig(**{**cfg.__dict__, **overrides})).eval()  # type: ignore[arg-type]


def plan(rows: int = 2, frames: int = 12, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, SEM, (rows, frames), generator=torch.Generator().manual_seed(seed))


def test_generate_fills_every_code_and_keeps_the_prompt() -> None:
    m = model()
    p = plan()
    prompt = torch.randint(0, AC, (2, 6, 8))  # 4 plan frames' coarse codes, extra levels ignored
    out = m.generate(params=SamplingParams(seed=3, takes=2), semantic=p,
                     prompt=Codes(semantic=p[:, :4], acoustic=prompt))  # fmt: skip
    assert out.acoustic is not None and out.semantic is not None
    assert out.acoustic.shape == (4, 4, 24)  # rows: window 0 take 0, window 0 take 1, ...
    assert ((out.acoustic >= 0) & (out.acoustic < AC)).all()
    assert torch.equal(out.semantic, p.repeat_interleave(2, dim=0))
    assert torch.equal(out.acoustic[:, :, :8], prompt[:, :4].repeat_interleave(2, dim=0))
    assert not torch.equal(out.acoustic[0], out.acoustic[1])  # two takes, two renderings


def test_generate_is_deterministic_under_a_seed() -> None:
    m, p = model(), plan()
    a = m.generate(params=SamplingParams(seed=1), semantic=p).acoustic
    b = m.generate(params=SamplingParams(seed=1), semantic=p).acoustic
    c = m.generate(params=SamplingParams(seed=2), semantic=p).acoustic
    assert a is not None and b is not None and c is not None
    assert torch.equal(a, b) and not torch.equal(a, c)
    greedy = SamplingParams(temperature=0.0, seed=None)
    g1, g2 = (m.generate(params=greedy, semantic=p).acoustic for _ in range(2))
    assert g1 is not None and g2 is not None and torch.equal(g1, g2)


def test_one_decoding_step_per_level_is_the_argmax_of_the_forward_pass() -> None:
    m, p = model(decode_steps=(1, 1, 1, 1)), plan(rows=1)
    out = m.generate(params=SamplingParams(temperature=0.0), semantic=p).acoustic
    assert out is not None
    # level by level: level q is the argmax given the levels below, all of it at once
    known = torch.full_like(out, -1)
    for q in range(4):
        logits = m.logits(p, known, torch.tensor([q]))
        assert torch.equal(logits.argmax(-1)[0], out[0, q])
        known[:, q] = out[:, q]


def test_training_mask_follows_soundstorm() -> None:
    m = model(prompt_rate=0.5)
    coarse = torch.randint(0, AC, (64, 4, 40))
    coarse[0, :, -6:] = -1  # padding is never known nor scored
    known, level, scored = m.training_mask(coarse, torch.Generator().manual_seed(0))
    real = coarse[:, 0] >= 0  # [B, U]
    prompted = []
    for b in range(64):
        q = int(level[b])
        assert torch.equal(known[b, :q], real[b].expand(q, -1))  # the levels below: known
        assert not (scored[b] & (known[b, q] | ~real[b])).any()  # scored = hidden and real
        # the levels above: only a prompt prefix, known at every level
        n = int(known[b, 3].sum()) if q < 3 else 0
        prefix = torch.arange(40) < n
        assert torch.equal(known[b, q + 1 :], (prefix & real[b]).expand(3 - q, -1))
        assert known[b, :, :n].all() and n <= 20
        if q < 3:
            prompted.append(n > 0)
    assert not scored[0, -6:].any() and not known[0, :, -6:].any()
    assert set(level.tolist()) == {0, 1, 2, 3}
    assert any(prompted) and not all(prompted)  # some rows continue a prompt, some do not
    assert scored.sum() > 0.2 * real.sum()  # masking ratios are spread over (0, 1]


def test_it_learns_to_render_its_plan() -> None:
    """Coarse codes that are a function of the plan: training must make the plan matter
    (``plan_gap`` > 0), which is what stage 1's decoder never learnt."""
    torch.manual_seed(0)
    m = model(prompt_rate=0.0).train()
    opt = torch.optim.AdamW(m.parameters(), lr=3e-3)
    p = plan(rows=16, frames=10)
    coarse = (p.repeat_interleave(2, 1)[:, None] * torch.arange(1, 5)[None, :, None]) % AC
    batch = {"instrumental_semantic": p[:, None], "instrumental_acoustic": coarse}
    before = m.loss_on_streams(batch)
    for _ in range(120):
        out = m.loss_on_streams(batch)
        opt.zero_grad()
        out.loss.backward()
        opt.step()
    m.eval()
    with torch.no_grad():
        out = m.loss_on_streams(batch)
        gap = m.validation_sums(batch, out) / out.count.sum()
    assert out.loss < 0.5 * before.loss
    assert float(gap) > 1.0  # nats: another window's plan makes the codes unpredictable


def test_bad_inputs_are_refused(tmp_path: Path) -> None:
    m = model()
    with pytest.raises(SingsongError, match="give semantic="):
        m.generate(params=SamplingParams())
    with pytest.raises(SingsongError, match="does not fit"):
        m.generate(params=SamplingParams(takes=3), semantic=plan(rows=2),
                   vocals=Codes(semantic=plan(rows=4)))  # fmt: skip
    with pytest.raises(SingsongError, match="prompt of 30 frames"):
        m.generate(params=SamplingParams(), semantic=plan(),
                   prompt=Codes(acoustic=torch.zeros(2, 4, 30, dtype=torch.long)))  # fmt: skip
    with pytest.raises(SingsongError):
        m.loss(plan(), torch.zeros(2, 4, 10, dtype=torch.long))  # not 2 frames per plan frame
    with pytest.raises(SingsongError, match="decode_steps"):
        RendererConfig(decode_steps=(4, 4))
    with pytest.raises(SingsongError, match="no semantic features"):
        m.set_semantic_features(torch.zeros(SEM, 4))


def test_release_round_trip(tmp_path: Path) -> None:
    m = model(semantic_features=6)
    m.set_semantic_features(torch.randn(SEM, 6))
    m.save_pretrained(tmp_path / "r")
    meta = json.loads((tmp_path / "r" / "config.json").read_text())
    assert meta["kind"] == "renderer" and meta["config"]["decode_steps"] == [3, 1, 1, 1]
    again = RendererModel.from_pretrained(tmp_path / "r")
    assert again.config == m.config  # the JSON list is a tuple again
    params = SamplingParams(seed=5)
    a = m.generate(params=params, semantic=plan()).acoustic
    b = again.generate(params=params, semantic=plan()).acoustic
    assert a is not None and b is not None and torch.equal(a, b)


def test_plan_guidance_pushes_away_from_no_plan() -> None:
    m = model(plan_guidance=3.0, decode_steps=(1, 1, 1, 1))
    p = plan(rows=1)
    unknown = torch.full((1, 4, 24), -1)
    level = torch.tensor([0])
    with_plan = m.logits(p, unknown, level)
    none = m.logits(p, unknown, level, keep_plan=torch.tensor([False]))
    other = m.logits(plan(rows=1, seed=9), unknown, level, keep_plan=torch.tensor([False]))
    torch.testing.assert_close(none, other)  # without its plan, a row does not read it
    assert not torch.allclose(none, with_plan)
    out = m.generate(params=SamplingParams(temperature=0.0), semantic=p).acoustic
    assert out is not None
    assert torch.equal(out[0, 0], (none + 3.0 * (with_plan - none)).argmax(-1)[0])
    # training drops whole plans: at a drop rate near 1 the loss does not depend on the plan
    m = model(plan_dropout=0.99).train()
    coarse = torch.randint(0, AC, (4, 4, 24))
    losses = []
    for seed in (0, 0):
        torch.manual_seed(123)
        losses.append(m.loss(plan(rows=4, seed=seed + len(losses)), coarse).loss)
    torch.testing.assert_close(losses[0], losses[1])
    with pytest.raises(SingsongError, match="plan_dropout"):
        RendererConfig(plan_dropout=1.0)
    with pytest.raises(SingsongError, match="plan_guidance"):
        RendererConfig(plan_guidance=-1.0)
    # a released renderer takes another plan guidance only if it learned the "no plan" case
    m.set_plan_guidance(2.0)
    assert m.config.plan_guidance == 2.0 and m.config.plan_dropout == 0.99
    with pytest.raises(SingsongError, match="plan_guidance"):
        m.set_plan_guidance(-1.0)
    with pytest.raises(SingsongError, match="plan_dropout > 0"):
        model(plan_dropout=0.0).set_plan_guidance(2.0)
    model(plan_dropout=0.0).set_plan_guidance(1.0)  # "none" is always possible
