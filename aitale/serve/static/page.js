// The story page: sends the form to POST /v1/stories with stream: true and shows the story as the
// server releases it (each piece already passed the content screen). Text is always set with
// textContent, never as HTML, so a story that contains markup shows as text.
"use strict";

function paragraphs(container, text) {
  container.replaceChildren();
  for (const part of text.split(/\n\s*\n/)) {
    if (!part.trim()) continue;
    const p = document.createElement("p");
    p.textContent = part.trim();
    container.appendChild(p);
  }
}

function requestBody(form) {
  const data = new FormData(form);
  const body = {
    title: data.get("title").trim(),
    age_group: data.get("age_group"),
    themes: data.getAll("themes").slice(0, 3),
    max_tokens: Number(data.get("length")),
    stream: true,
  };
  // "any style" sends none: the story is then written unconditioned on style (as with no themes)
  if (data.get("style")) body.style = data.get("style");
  const seed = data.get("seed");
  if (seed !== null && seed !== "") body.seed = Number(seed);
  return body;
}

async function* events(response) {
  // Server-sent events: "data: <json>" blocks separated by a blank line, ending with "data: [DONE]".
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      const data = block.split("\n").filter((l) => l.startsWith("data: ")).map((l) => l.slice(6)).join("\n");
      if (data === "[DONE]") return;
      if (data) yield JSON.parse(data);
    }
  }
}

async function tell(form) {
  const button = document.getElementById("tell");
  const status = document.getElementById("status");
  const article = document.getElementById("story");
  const text = document.getElementById("story-text");
  const safety = document.getElementById("safety");
  const body = requestBody(form);
  button.disabled = true;
  status.textContent = "Writing your story…";
  article.hidden = false;
  document.getElementById("story-title").textContent = body.title;
  text.replaceChildren();
  safety.textContent = "";
  safety.className = "";
  let written = "";
  try {
    const headers = { "Content-Type": "application/json" };
    const key = sessionStorage.getItem("aitale-api-key");
    if (key) headers.Authorization = "Bearer " + key;
    const response = await fetch("/v1/stories", { method: "POST", headers, body: JSON.stringify(body) });
    if (!response.ok) {
      const problem = await response.json().catch(() => ({}));
      throw new Error((problem.error && problem.error.message) || response.statusText);
    }
    for await (const event of events(response)) {
      if (event.error) throw new Error(event.error.message);
      if (event.object === "story.chunk") {
        written += event.text;
        paragraphs(text, written);
      } else if (event.object === "story.retry") {
        written = "";
        text.replaceChildren();
        status.textContent = "Trying again for a gentler story…";
      } else if (event.object === "story") {
        paragraphs(text, event.text);
        safety.textContent = "Checked for ages " + event.age_group + ": passed the content screen" +
          (event.safety.attempts > 1 ? " (after " + event.safety.attempts + " drafts)." : ".");
        status.textContent = "The end.";
      }
    }
  } catch (err) {
    status.textContent = "No story this time: " + err.message;
    safety.className = "refused";
  } finally {
    button.disabled = false;
  }
}

document.addEventListener("DOMContentLoaded", () => {
  const form = document.getElementById("request");
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    tell(form);
  });
});
