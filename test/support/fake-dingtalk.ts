/**
 * Test support: a DingTalk custom robot endpoint (`POST /robot/send?access_token=…`)
 * that checks what the real one checks, written from DingTalk's documentation
 * (not from the platform's code):
 *
 * - the access token (300001 "token is not exist" otherwise);
 * - signed robots: `timestamp` within an hour of now and
 *   `sign = base64(HMAC-SHA256(secret, timestamp + "\n" + secret))`, compared
 *   after the query string's one URL decoding (310000 "sign not match");
 * - keyword robots: the message must contain the keyword (310000);
 * - markdown needs a title and a text of at most 20 000 bytes (460101);
 * - at most `perWindow` messages per `windowMs` per robot: one more blocks
 *   the robot for `blockMs` (130101 "send too fast") — DingTalk: 20 per
 *   minute, blocked 10 minutes;
 * - a `msgUuid` this robot saw before is not shown again (answered as sent).
 *
 * Faults can be queued (5xx, -1, connection reset, a slow answer) and every
 * request and every shown message is recorded.
 */
import crypto from "node:crypto";
import http from "node:http";
import type { AddressInfo } from "node:net";

export interface FakeRobot {
	token: string;
	secret?: string;
	keyword?: string;
	/** Answer every request with this errcode (a disabled robot, say). */
	errcode?: number;
	/** This robot's own limit (a robot someone else also sends through has less left). */
	perWindow?: number;
}

/** 5xx: a gateway error; busy: errcode -1; reset: the connection dropped unanswered; lost-answer: the message is taken, the answer lost; slow: answered late; ok: no fault this time. */
export type Fault = "5xx" | "busy" | "reset" | "lost-answer" | "slow" | "ok";

export interface ShownMessage {
	token: string;
	msgUuid: string;
	title: string;
	text: string;
	atMobiles: string[];
	at: number;
}

export interface RequestRecord {
	token: string;
	at: number;
	msgUuid: string | null;
	errcode: number | "reset" | "lost-answer" | "http 502";
}

export class FakeDingTalk {
	readonly robots = new Map<string, FakeRobot>();
	readonly requests: RequestRecord[] = [];
	/** Shown in the group, once per msgUuid, in order. */
	readonly messages: ShownMessage[] = [];
	/** Requests refused because a robot went over its rate (the platform should never cause one). */
	rateViolations = 0;
	private readonly faults = new Map<string, Fault[]>();
	private readonly accepted = new Map<string, number[]>();
	private readonly blockedUntil = new Map<string, number>();
	private server?: http.Server;
	private readonly sockets = new Set<import("node:net").Socket>();
	/** Callbacks waiting for a condition on the records. */
	private waiters: (() => void)[] = [];

	constructor(readonly opts: { perWindow?: number; windowMs?: number; blockMs?: number; slowMs?: number } = {}) {}

	get perWindow() {
		return this.opts.perWindow ?? 20;
	}
	get windowMs() {
		return this.opts.windowMs ?? 60_000;
	}

	addRobot(r: FakeRobot): this {
		this.robots.set(r.token, r);
		return this;
	}

	/** The next requests to this robot fail this way, one fault per request. */
	inject(token: string, ...faults: Fault[]): void {
		this.faults.set(token, [...(this.faults.get(token) ?? []), ...faults]);
	}

	url(token: string): string {
		const { port } = this.server!.address() as AddressInfo;
		return `http://127.0.0.1:${port}/robot/send?access_token=${token}`;
	}

	messagesOf(token: string): ShownMessage[] {
		return this.messages.filter(m => m.token === token);
	}

	/** Resolves once `probe` holds after some request (checked now and after each one). */
	async until<T>(what: string, probe: () => T | false | undefined, ms = 15_000): Promise<T> {
		const end = Date.now() + ms;
		for (;;) {
			const v = probe();
			if (v) return v;
			const left = end - Date.now();
			if (left <= 0) throw new Error(`timed out waiting for ${what}`);
			await new Promise<void>(resolve => {
				const t = setTimeout(resolve, Math.min(left, 200));
				this.waiters.push(() => {
					clearTimeout(t);
					resolve();
				});
			});
		}
	}

	/** The most requests a robot made in any window of `windowMs`. */
	maxRequestsPerWindow(token: string): number {
		const at = this.requests.filter(r => r.token === token).map(r => r.at);
		let max = 0;
		for (let i = 0, j = 0; i < at.length; i++) {
			while (at[i] - at[j] >= this.windowMs) j++;
			max = Math.max(max, i - j + 1);
		}
		return max;
	}

	async start(): Promise<this> {
		this.server = http.createServer((req, res) => void this.handle(req, res));
		this.server.on("connection", s => {
			this.sockets.add(s);
			s.on("close", () => this.sockets.delete(s));
		});
		await new Promise<void>(r => this.server!.listen(0, "127.0.0.1", r));
		return this;
	}

	async stop(): Promise<void> {
		for (const s of this.sockets) s.destroy();
		await new Promise<void>(r => this.server?.close(() => r()) ?? r());
	}

	private notify(): void {
		const w = this.waiters;
		this.waiters = [];
		for (const f of w) f();
	}

	private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
		const chunks: Buffer[] = [];
		for await (const c of req) chunks.push(c as Buffer);
		const url = new URL(req.url ?? "/", "http://x");
		const token = url.searchParams.get("access_token") ?? "";
		const now = Date.now();
		let body: { msgtype?: string; markdown?: { title?: string; text?: string }; at?: { atMobiles?: string[] }; msgUuid?: string } = {};
		try {
			body = JSON.parse(Buffer.concat(chunks).toString("utf8"));
		} catch {
			/* answered below */
		}
		const record: RequestRecord = { token, at: now, msgUuid: typeof body.msgUuid === "string" ? body.msgUuid : null, errcode: 0 };
		this.requests.push(record);
		const answer = (errcode: number, errmsg: string) => {
			record.errcode = errcode;
			res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ errcode, errmsg }));
			this.notify();
		};
		if (req.method !== "POST" || url.pathname !== "/robot/send") return answer(404, "not found");
		const robot = this.robots.get(token);
		if (!robot) return answer(300001, "token is not exist");

		const fault = this.faults.get(token)?.shift();
		if (fault === "reset") {
			record.errcode = "reset";
			req.socket.destroy();
			return this.notify();
		}
		if (fault === "5xx") {
			record.errcode = "http 502";
			res.writeHead(502, { "content-type": "text/html" }).end("<html>Bad Gateway</html>");
			return this.notify();
		}
		if (fault === "busy") return answer(-1, "系统繁忙");
		if (fault === "slow") await new Promise(r => setTimeout(r, this.opts.slowMs ?? 10_000));

		if (robot.errcode) return answer(robot.errcode, "robot is disabled");
		if (robot.secret) {
			const ts = Number(url.searchParams.get("timestamp"));
			const sign = url.searchParams.get("sign") ?? ""; // URLSearchParams decodes once, as DingTalk's framework does
			const expected = crypto.createHmac("sha256", robot.secret).update(`${ts}\n${robot.secret}`).digest("base64");
			if (!Number.isFinite(ts) || Math.abs(now - ts) > 3600_000) return answer(310000, "invalid timestamp");
			if (sign.length !== expected.length || !crypto.timingSafeEqual(Buffer.from(sign), Buffer.from(expected))) return answer(310000, "sign not match");
		}
		if (body.msgtype !== "markdown" || typeof body.markdown?.title !== "string" || typeof body.markdown?.text !== "string") return answer(40035, "缺少参数 markdown");
		if (robot.keyword && !`${body.markdown.title}${body.markdown.text}`.includes(robot.keyword)) return answer(310000, "keywords not in content");
		if (Buffer.byteLength(body.markdown.text, "utf8") > 20_000) return answer(460101, "message too long, exceed 20000 bytes");

		// The rate: DingTalk counts the messages a robot sends; one over the limit blocks it.
		if ((this.blockedUntil.get(token) ?? 0) > now) return answer(130101, "send too fast, exceed 20 times per minute");
		const recent = (this.accepted.get(token) ?? []).filter(t => t > now - this.windowMs);
		if (recent.length >= (robot.perWindow ?? this.perWindow)) {
			this.rateViolations++;
			this.blockedUntil.set(token, now + (this.opts.blockMs ?? 600_000));
			return answer(130101, "send too fast, exceed 20 times per minute");
		}
		this.accepted.set(token, [...recent, now]);
		if (!record.msgUuid || !this.messages.some(m => m.token === token && m.msgUuid === record.msgUuid)) {
			this.messages.push({ token, msgUuid: record.msgUuid ?? "", title: body.markdown.title, text: body.markdown.text, atMobiles: body.at?.atMobiles ?? [], at: now });
		}
		if (fault === "lost-answer") {
			record.errcode = "lost-answer";
			req.socket.destroy();
			return this.notify();
		}
		return answer(0, "ok");
	}
}
