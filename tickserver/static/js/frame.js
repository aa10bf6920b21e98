// Rendering is batched per animation frame: messages only record what changed and ask for a
// frame; each view then draws at most once per frame, however many messages arrived. A
// background tab gets no frames, so nothing is drawn (or queued beyond the latest state)
// until it is visible again.

// `#render=immediate` draws on every message instead: the naive way, kept only so
// `tickserver bench dashboard` can measure what batching saves. Not for normal use.
const IMMEDIATE = new URLSearchParams(location.hash.slice(1)).get("render") === "immediate";

const renderers = new Set();
let requested = false;
let frames = 0;

function runFrame() {
  requested = false;
  frames += 1;
  for (const r of renderers) {
    if (!r.dirty) continue;
    r.dirty = false;
    try {
      r.draw();
    } catch (err) {
      // One broken view must not stop the others from drawing.
      console.error(`render ${r.name} failed`, err);
    }
  }
}

function request() {
  if (!requested) {
    requested = true;
    requestAnimationFrame(runFrame);
  }
}

/**
 * Register a view's draw function; returns `invalidate()`, which marks it dirty and makes
 * sure one frame is requested.
 */
export function renderer(name, draw) {
  const r = { name, draw, dirty: false, drawing: false };
  renderers.add(r);
  if (IMMEDIATE) {
    return () => {
      if (r.drawing) {
        // Asked again from inside its own draw (e.g. flashes still to clear): next frame.
        r.dirty = true;
        request();
        return;
      }
      r.drawing = true;
      frames += 1;
      try {
        r.draw();
      } finally {
        r.drawing = false;
      }
    };
  }
  return () => {
    r.dirty = true;
    request();
  };
}

/** Frames drawn so far (draw calls in immediate mode; exposed for diagnostics). */
export function frameCount() {
  return frames;
}
