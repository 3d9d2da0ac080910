// GET /api/v1/events read with fetch + ReadableStream, so the token travels in the Authorization
// header (EventSource cannot send one). Reconnects with a growing pause; a 404 means this gateway
// has no event stream, and the page polls instead (onState tells it which).
import { accessToken, refresh } from "./api.js";

const MAX_FRAME = 64 * 1024;

/** Splits an SSE byte stream into {event, data} frames (data parsed as JSON; comments skipped). */
export function frameParser(onFrame) {
	let buffer = "";
	return chunk => {
		buffer += chunk;
		if (buffer.length > MAX_FRAME * 4) buffer = buffer.slice(-MAX_FRAME);
		let end;
		while ((end = buffer.search(/\r?\n\r?\n/)) >= 0) {
			const block = buffer.slice(0, end);
			buffer = buffer.slice(end).replace(/^\r?\n\r?\n/, "");
			let event = "message";
			const data = [];
			for (const line of block.split(/\r?\n/)) {
				if (!line || line.startsWith(":")) continue;
				const colon = line.indexOf(":");
				const field = colon < 0 ? line : line.slice(0, colon);
				const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
				if (field === "event") event = value;
				else if (field === "data") data.push(value);
			}
			if (!data.length) continue;
			try {
				onFrame(event, JSON.parse(data.join("\n")));
			} catch {
				/* a frame that is not JSON: not ours to show */
			}
		}
	};
}

export function connectEvents({ topics, onEvent, onState }) {
	let stopped = false;
	let controller = null;
	let pause = 1000;

	async function run() {
		while (!stopped) {
			controller = new AbortController();
			try {
				const res = await fetch(`/api/v1/events?topics=${encodeURIComponent(topics)}`, {
					headers: { authorization: `Bearer ${accessToken() ?? ""}`, accept: "text/event-stream" },
					signal: controller.signal,
				});
				if (res.status === 401) {
					await refresh();
					continue;
				}
				const type = res.headers.get("content-type") ?? "";
				if (!res.ok || !type.startsWith("text/event-stream") || !res.body) {
					onState(res.status === 404 ? "unavailable" : "error");
					pause = res.status === 404 ? 60_000 : Math.min(pause * 2, 30_000);
				} else {
					const parse = frameParser((event, data) => {
						if (event === "ready") {
							pause = 1000;
							onState("live");
						} else if (event === "overflow") controller.abort();
						else onEvent(event, data);
					});
					const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
					for (;;) {
						const { value, done } = await reader.read();
						if (done) break;
						parse(value);
					}
					onState("error");
				}
			} catch (err) {
				if (stopped) return;
				onState(err?.status === 401 ? "signed-out" : "error");
				if (err?.status === 401) return;
			}
			if (stopped) return;
			await new Promise(r => setTimeout(r, pause));
			pause = Math.min(pause * 2, 30_000);
		}
	}
	void run();
	return () => {
		stopped = true;
		controller?.abort();
	};
}
