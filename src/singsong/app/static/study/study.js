// Listening study: fetch a trial (two opaque clips), make sure both were played, post the choice.
// One <audio> element plays everything, so two clips never sound at once.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const player = $("player");
  let trial = null;
  let heard = new Set();
  let playing = null; // "a" | "b" | "vocals" | null

  function showError(message) {
    $("error").textContent = message;
    $("error").hidden = !message;
  }

  function labels() {
    $("play-a").textContent = playing === "a" ? "■ Stop" : "▶ Play A";
    $("play-b").textContent = playing === "b" ? "■ Stop" : "▶ Play B";
    $("play-vocals").textContent = playing === "vocals" ? "■ Stop" : "▶ Singing alone";
    const ready = heard.has("a") && heard.has("b");
    $("choose-a").disabled = !ready;
    $("choose-b").disabled = !ready;
    $("hint").hidden = ready;
    document.querySelectorAll(".clip").forEach((el, i) => {
      el.classList.toggle("heard", heard.has(i === 0 ? "a" : "b"));
    });
  }

  function stop() {
    player.pause();
    playing = null;
    labels();
  }

  async function play(which) {
    if (!trial) return;
    if (playing === which) { stop(); return; }
    player.src = which === "vocals" ? trial.vocals : trial[which];
    playing = which;
    labels();
    try {
      await player.play();
    } catch (e) {
      showError(`Cannot play the clip: ${e.message}`);
      stop();
    }
  }

  // counted as heard once it has actually played for a moment, not on the click alone
  player.addEventListener("timeupdate", () => {
    if (playing && player.currentTime > 0.3 && !heard.has(playing)) {
      heard.add(playing);
      labels();
    }
  });
  player.addEventListener("ended", () => {
    if (playing) heard.add(playing);
    stop();
  });

  async function next() {
    stop();
    heard = new Set();
    labels();
    const res = await fetch("/api/trial", { credentials: "same-origin" });
    if (!res.ok) throw new Error(`could not get the next pair (${res.status})`);
    trial = await res.json();
    document.body.dataset.trial = trial.trial;
    $("count").textContent = trial.answered;
    $("total").textContent = trial.total;
    $("vocals-row").hidden = !trial.vocals;
    showError("");
  }

  async function choose(choice) {
    if (!trial) return;
    $("choose-a").disabled = $("choose-b").disabled = true;
    try {
      const res = await fetch("/api/answer", {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ trial: trial.trial, choice }),
      });
      if (!res.ok) {
        const body = await res.json().catch(() => ({}));
        throw new Error(body.detail || `could not save the answer (${res.status})`);
      }
      await next();
    } catch (e) {
      showError(e.message);
      labels();
    }
  }

  $("play-a").addEventListener("click", () => play("a"));
  $("play-b").addEventListener("click", () => play("b"));
  $("play-vocals").addEventListener("click", () => play("vocals"));
  $("choose-a").addEventListener("click", () => choose("a"));
  $("choose-b").addEventListener("click", () => choose("b"));

  next().catch((e) => showError(e.message));
})();
