// singsong page: record or upload, submit a job, poll it, then play each take with Web Audio.
// Each take plays as two sources (vocals, band) through their own gain nodes, so solo toggles and
// the balance slider change the mix live; at the centre of the slider both gains are 1, which is
// exactly the mix.wav the server wrote.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const POLL_MS = 500;
  const state = { info: null, input: null, ctx: null, current: null, busy: false };

  const fmt = (s) => {
    s = Math.max(0, s);
    return `${Math.floor(s / 60)}:${String(Math.floor(s % 60)).padStart(2, "0")}`;
  };

  function showError(message) {
    const el = $("error");
    el.textContent = message;
    el.hidden = !message;
  }

  async function detail(res) {
    try {
      const body = await res.json();
      if (typeof body.detail === "string") return body.detail;
      if (Array.isArray(body.detail)) return body.detail.map((d) => d.msg).join("; ");
    } catch (e) { /* not JSON: fall through to the status line */ }
    return `${res.status} ${res.statusText}`;
  }

  async function loadInfo() {
    const res = await fetch("/api/info");
    const info = await res.json();
    state.info = info;
    $("debug-banner").hidden = !info.debug_model;
    if (info.temperature !== null) {  // start from the model's own sampling temperature
      $("temperature").value = info.temperature;
      $("temp-out").textContent = Number($("temperature").value).toFixed(1);
    }
    const mb = (info.max_upload_bytes / 2 ** 20).toFixed(0);
    $("limits").textContent =
      `Up to ${info.max_seconds} s and ${mb} MB. Any common audio format.`;
    const takes = $("takes");
    takes.innerHTML = "";
    for (let n = 1; n <= info.max_takes; n++) {
      const opt = new Option(String(n), String(n), false, n === Math.min(2, info.max_takes));
      takes.add(opt);
    }
  }

  function setInput(blob, label) {
    state.input = blob;
    const preview = $("preview");
    if (preview.src) URL.revokeObjectURL(preview.src);
    preview.src = URL.createObjectURL(blob);
    preview.hidden = false;
    $("rec-status").textContent = label;
    $("go").disabled = state.busy;
    showError("");
  }

  // --- input: microphone -------------------------------------------------------------------------

  const rec = { recorder: null, timer: null, started: 0 };

  function pickMime() {
    const kinds = ["audio/webm;codecs=opus", "audio/ogg;codecs=opus", "audio/mp4", "audio/webm"];
    return kinds.find((k) => window.MediaRecorder && MediaRecorder.isTypeSupported(k)) || "";
  }

  async function startRecording() {
    if (!navigator.mediaDevices || !window.MediaRecorder) {
      showError("This browser cannot record here (it needs HTTPS or localhost). Upload a file.");
      return;
    }
    let stream;
    try {
      // raw voice: the browser's call-oriented processing would gate and pump the singing
      stream = await navigator.mediaDevices.getUserMedia({
        audio: { echoCancellation: false, noiseSuppression: false, autoGainControl: false },
      });
    } catch (e) {
      showError(`No microphone: ${e.name === "NotAllowedError" ? "access was refused" : e.message}`);
      return;
    }
    const mime = pickMime();
    const recorder = new MediaRecorder(stream, mime ? { mimeType: mime } : {});
    const chunks = [];
    recorder.ondataavailable = (ev) => { if (ev.data.size) chunks.push(ev.data); };
    recorder.onstop = () => {
      stream.getTracks().forEach((t) => t.stop());
      clearInterval(rec.timer);
      $("record").textContent = "● Record";
      $("record").classList.remove("recording");
      const blob = new Blob(chunks, { type: recorder.mimeType || mime || "audio/webm" });
      const secs = (performance.now() - rec.started) / 1000;
      setInput(blob, `Recorded ${secs.toFixed(1)} s.`);
      rec.recorder = null;
    };
    rec.recorder = recorder;
    rec.started = performance.now();
    recorder.start(250);
    $("record").textContent = "■ Stop";
    $("record").classList.add("recording");
    const max = state.info ? state.info.max_seconds : 60;
    rec.timer = setInterval(() => {
      const secs = (performance.now() - rec.started) / 1000;
      $("rec-status").textContent = `Recording… ${fmt(secs)} (at most ${fmt(max)})`;
      if (secs >= max - 0.5) recorder.stop();
    }, 200);
  }

  $("record").addEventListener("click", () => {
    if (rec.recorder) rec.recorder.stop();
    else startRecording();
  });

  $("file").addEventListener("change", (ev) => {
    const f = ev.target.files[0];
    if (!f) return;
    if (state.info && f.size > state.info.max_upload_bytes) {
      showError(`${f.name} is larger than the ${(state.info.max_upload_bytes / 2 ** 20).toFixed(0)} MB limit.`);
      return;
    }
    setInput(f, `File: ${f.name}`);
  });

  $("temperature").addEventListener("input", (ev) => {
    $("temp-out").textContent = Number(ev.target.value).toFixed(1);
  });

  // --- the job -----------------------------------------------------------------------------------

  function progress(fraction, text) {
    $("progress").hidden = false;
    $("bar-fill").style.width = `${Math.round(100 * fraction)}%`;
    $("progress-text").textContent = text;
  }

  async function submit() {
    if (!state.input || state.busy) return;
    state.busy = true;
    $("go").disabled = true;
    showError("");
    progress(0, "Uploading…");
    try {
      const q = new URLSearchParams({ takes: $("takes").value, temperature: $("temperature").value });
      const res = await fetch(`/api/jobs?${q}`, {
        method: "POST",
        body: state.input,
        headers: { "Content-Type": state.input.type || "application/octet-stream" },
      });
      if (!res.ok) throw new Error(await detail(res));
      const job = await res.json();
      document.body.dataset.job = job.id;
      await poll(job.status_url);
    } catch (e) {
      showError(e.message);
      $("progress").hidden = true;
    } finally {
      state.busy = false;
      $("go").disabled = !state.input;
    }
  }
  $("go").addEventListener("click", submit);

  async function poll(url) {
    for (;;) {
      const res = await fetch(url);
      if (!res.ok) throw new Error(await detail(res));
      const s = await res.json();
      if (s.state === "queued") {
        progress(0.02, s.queue_position ? `Waiting in line: ${s.queue_position} ahead…` : "Starting…");
      } else if (s.state === "running") {
        const f = s.windows_total ? s.windows_done / s.windows_total : 0;
        progress(0.05 + 0.9 * f, s.windows_total
          ? `Generating: window ${s.windows_done} of ${s.windows_total}…` : "Generating…");
      } else if (s.state === "error") {
        throw new Error(s.error || "generation failed");
      } else {
        progress(1, "Loading the takes…");
        await showResults(s);
        progress(1, `Done. Files are kept for ${Math.round(s.expires_in_s / 60)} minutes.`);
        return;
      }
      await new Promise((r) => setTimeout(r, POLL_MS));
    }
  }

  // --- results -----------------------------------------------------------------------------------

  function audioContext() {
    if (!state.ctx) {
      state.ctx = new AudioContext();
      const mark = () => { document.body.dataset.audio = state.ctx.state; };
      state.ctx.addEventListener("statechange", mark);
      mark();
    }
    return state.ctx;
  }

  async function fetchBuffer(ctx, url) {
    const res = await fetch(url);
    if (!res.ok) throw new Error(`could not load ${url}: ${await detail(res)}`);
    return ctx.decodeAudioData(await res.arrayBuffer());
  }

  async function showResults(status) {
    if (state.current) state.current.pause();
    state.current = null;
    const ctx = audioContext();
    const box = $("results");
    box.innerHTML = "";
    for (const [i, files] of status.takes.entries()) {
      const [vocals, band] = await Promise.all([
        fetchBuffer(ctx, files.vocals), fetchBuffer(ctx, files.instrumental),
      ]);
      const card = $("take-template").content.firstElementChild.cloneNode(true);
      card.querySelector(".take-title").textContent = `Take ${i + 1}`;
      for (const stem of ["mix", "instrumental", "vocals"]) {
        const a = card.querySelector(`.dl-${stem}`);
        a.href = files[stem];
        a.download = `singsong-take${i + 1}-${stem}.wav`;
      }
      box.appendChild(card);
      new Player(ctx, card, vocals, band);
    }
  }

  class Player {
    constructor(ctx, card, vocals, band) {
      Object.assign(this, { ctx, card, vocals, band, sources: [], offset: 0, startedAt: 0 });
      this.playing = false;
      this.solo = "mix";
      this.duration = Math.min(vocals.duration, band.duration);
      this.gv = ctx.createGain();
      this.gb = ctx.createGain();
      this.gv.connect(ctx.destination);
      this.gb.connect(ctx.destination);
      this.canvas = card.querySelector(".wave");
      this.peaks = null;
      this.button = card.querySelector(".play");
      this.button.addEventListener("click", () => (this.playing ? this.pause() : this.play()));
      card.querySelectorAll(".segmented button").forEach((b) => b.addEventListener("click", () => {
        this.solo = b.dataset.solo;
        card.querySelectorAll(".segmented button").forEach((o) => {
          o.classList.toggle("on", o === b);
          o.setAttribute("aria-pressed", String(o === b));
        });
        this.applyGains();
      }));
      this.slider = card.querySelector(".balance-slider");
      this.slider.addEventListener("input", () => this.applyGains());
      this.canvas.addEventListener("click", (ev) => {
        const r = this.canvas.getBoundingClientRect();
        this.seek(((ev.clientX - r.left) / r.width) * this.duration);
      });
      new ResizeObserver(() => { this.peaks = null; this.draw(); }).observe(this.canvas);
      this.applyGains();
      this.draw();
    }

    applyGains() {
      const b = Number(this.slider.value); // 0 = vocals only ... 0.5 = the mix ... 1 = band only
      let v = Math.min(1, 2 * (1 - b));
      let g = Math.min(1, 2 * b);
      if (this.solo === "vocals") [v, g] = [1, 0];
      if (this.solo === "instrumental") [v, g] = [0, 1];
      const t = this.ctx.currentTime;
      this.gv.gain.setTargetAtTime(v, t, 0.015); // short glide: no clicks when switching
      this.gb.gain.setTargetAtTime(g, t, 0.015);
      this.card.dataset.gains = `${v.toFixed(2)},${g.toFixed(2)}`;
    }

    position() {
      return this.playing ? this.ctx.currentTime - this.startedAt : this.offset;
    }

    async play() {
      if (state.current && state.current !== this) state.current.pause();
      state.current = this;
      await this.ctx.resume();
      if (this.offset >= this.duration) this.offset = 0;
      this.sources = [[this.vocals, this.gv], [this.band, this.gb]].map(([buf, gain]) => {
        const src = this.ctx.createBufferSource();
        src.buffer = buf;
        src.connect(gain);
        src.start(0, this.offset);
        return src;
      });
      this.sources[0].onended = () => {
        if (this.playing && this.position() >= this.duration - 0.05) this.stop(0);
      };
      this.startedAt = this.ctx.currentTime - this.offset;
      this.setPlaying(true);
      const tick = () => {
        if (!this.playing) return;
        this.draw();
        requestAnimationFrame(tick);
      };
      requestAnimationFrame(tick);
    }

    pause() { if (this.playing) this.stop(this.position()); }

    stop(offset) {
      this.sources.forEach((s) => { s.onended = null; s.stop(); });
      this.sources = [];
      this.offset = offset;
      this.setPlaying(false);
      this.draw();
    }

    seek(seconds) {
      const was = this.playing;
      if (was) this.stop(seconds); else this.offset = seconds;
      if (was) this.play(); else this.draw();
    }

    setPlaying(on) {
      this.playing = on;
      this.button.textContent = on ? "❚❚ Pause" : "▶ Play";
      this.button.setAttribute("aria-pressed", String(on));
      this.card.dataset.playing = String(on);
    }

    computePeaks(columns) {
      // the mix's envelope: vocals + band, min/max per pixel column
      const v = this.vocals.getChannelData(0), b = this.band.getChannelData(0);
      const n = Math.min(v.length, b.length);
      const per = Math.max(1, Math.floor(n / columns));
      const peaks = new Float32Array(columns * 2);
      for (let c = 0; c < columns; c++) {
        let lo = 0, hi = 0;
        for (let k = c * per, end = Math.min(n, k + per); k < end; k++) {
          const x = v[k] + b[k];
          if (x < lo) lo = x;
          if (x > hi) hi = x;
        }
        peaks[2 * c] = lo;
        peaks[2 * c + 1] = hi;
      }
      return peaks;
    }

    draw() {
      const c = this.canvas, dpr = window.devicePixelRatio || 1;
      const w = Math.max(1, Math.round(c.clientWidth * dpr)), h = Math.round(c.clientHeight * dpr);
      if (c.width !== w || c.height !== h || !this.peaks) {
        c.width = w; c.height = h;
        this.peaks = this.computePeaks(w);
      }
      const g = c.getContext("2d");
      const pos = this.position();
      const played = Math.round((pos / this.duration) * w);
      g.clearRect(0, 0, w, h);
      const mid = h / 2;
      for (let x = 0; x < w; x++) {
        g.fillStyle = x < played ? "#d1495b" : "#b9b5ad";
        const lo = this.peaks[2 * x], hi = this.peaks[2 * x + 1];
        g.fillRect(x, mid - hi * mid, 1, Math.max(1, (hi - lo) * mid));
      }
      this.card.dataset.position = pos.toFixed(3);
      this.card.querySelector(".time").textContent = `${fmt(pos)} / ${fmt(this.duration)}`;
    }
  }

  loadInfo().catch((e) => showError(`Cannot reach the server: ${e.message}`));
})();
