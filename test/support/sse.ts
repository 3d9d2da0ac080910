/**
 * Test support: a small server-sent-events reader over node:http (GET with a
 * bearer token), that parses frames as they come and lets a test wait for an
 * event by predicate.
 */
import { EventEmitter } from "node:events";
import http from "node:http";

export interface SseEvent {
	event: string;
	data: any;
}

export interface SseStream {
	status: number;
	headers: http.IncomingHttpHeaders;
	/** Every event so far, in order. */
	events: SseEvent[];
	/** Comment lines (`: ping`) so far. */
	comments: number;
	/** The whole body, for answers that are not a stream (401, 422 …). */
	text: string;
	/** Resolves with the first event (received or still to come) that matches. */
	waitFor(what: string, match: (e: SseEvent) => boolean, ms?: number): Promise<SseEvent>;
	/** Resolves when the server ended the stream. */
	ended: Promise<void>;
	res: http.IncomingMessage;
	/** Hang up (a client going away). */
	close(): void;
}

export function openSse(baseUrl: string, path: string, token?: string, headers: Record<string, string> = {}): Promise<SseStream> {
	return new Promise((resolve, reject) => {
		const req = http.get(`${baseUrl}${path}`, { headers: { accept: "text/event-stream", ...(token ? { authorization: `Bearer ${token}` } : {}), ...headers } }, res => {
			const bus = new EventEmitter();
			bus.setMaxListeners(100);
			let buffer = "";
			let done = false;
			const stream: SseStream = {
				status: res.statusCode ?? 0,
				headers: res.headers,
				events: [],
				comments: 0,
				text: "",
				res,
				ended: new Promise(r => res.once("close", () => { done = true; bus.emit("end"); r(); })),
				close: () => req.destroy(),
				waitFor(what, match, ms = 8000) {
					const found = stream.events.find(match);
					if (found) return Promise.resolve(found);
					return new Promise((ok, fail) => {
						const stop = () => {
							clearTimeout(timer);
							bus.off("event", onEvent);
							bus.off("end", onEnd);
						};
						const onEvent = (e: SseEvent) => {
							if (!match(e)) return;
							stop();
							ok(e);
						};
						const onEnd = () => {
							stop();
							fail(new Error(`stream ended while waiting for ${what}; got ${JSON.stringify(stream.events.map(e => e.event))}`));
						};
						const timer = setTimeout(() => {
							stop();
							fail(new Error(`timed out waiting for ${what}; got ${JSON.stringify(stream.events)}`));
						}, ms);
						bus.on("event", onEvent);
						if (done) onEnd();
						else bus.on("end", onEnd);
					});
				},
			};
			res.setEncoding("utf8");
			res.on("data", (chunk: string) => {
				stream.text += chunk.length + stream.text.length <= 1_000_000 ? chunk : "";
				buffer += chunk;
				let cut: number;
				while ((cut = buffer.indexOf("\n\n")) !== -1) {
					const block = buffer.slice(0, cut);
					buffer = buffer.slice(cut + 2);
					let event = "message";
					const data: string[] = [];
					for (const line of block.split("\n")) {
						if (line.startsWith(":")) stream.comments++;
						else if (line.startsWith("event:")) event = line.slice(6).trim();
						else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
					}
					if (!data.length) continue;
					const e = { event, data: JSON.parse(data.join("\n")) };
					stream.events.push(e);
					bus.emit("event", e);
				}
			});
			res.on("error", () => undefined);
			resolve(stream);
		});
		req.on("error", reject);
	});
}
