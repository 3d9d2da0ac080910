/**
 * The DingTalk custom robot, as its official API defines it. Pure: signing,
 * the markdown message, and what an answer means.
 *
 * - Signing: `sign = urlEncode(base64(HMAC-SHA256(key = secret, timestamp + "\n" + secret)))`,
 *   appended as `&timestamp=…&sign=…`, afresh for every request (DingTalk
 *   refuses a timestamp more than an hour off).
 * - `msgUuid` in the body: DingTalk sends a message once per uuid, so a retry
 *   reuses the notification's id.
 * - Markdown bodies must stay under 20 000 bytes (errcode 460101 otherwise).
 * - errcode 0 is success (also when HTTP says 200 it may not be); 130101
 *   "send too fast" blocks the robot for 10 minutes; 310000 is a refused
 *   signature, keyword or IP (configuration, not retried blindly); -1 is busy.
 */
import crypto from "node:crypto";

export function dingtalkSign(secret: string, timestamp: number): string {
	return encodeURIComponent(crypto.createHmac("sha256", secret).update(`${timestamp}\n${secret}`, "utf8").digest("base64"));
}

/** The robot's webhook with a fresh signature (when the robot has a secret). */
export function signedUrl(webhook: string, secret: string | undefined, timestamp: number): string {
	if (!secret) return webhook;
	return `${webhook}${webhook.includes("?") ? "&" : "?"}timestamp=${timestamp}&sign=${dingtalkSign(secret, timestamp)}`;
}

/** What DingTalk's answer to one send means for the notification and the robot. */
export type SendOutcome =
	| { kind: "sent" }
	/** Network error, timeout, 5xx, busy (-1): try again later, with backoff. */
	| { kind: "retry"; reason: string }
	/** 130101: the robot is blocked for 10 minutes. */
	| { kind: "throttled"; reason: string }
	/** 310000 and the like: the robot's configuration is wrong; retrying changes nothing. */
	| { kind: "misconfigured"; reason: string }
	/** The robot is gone (bad token, disabled): disable it, tell the fallback. */
	| { kind: "disabled"; reason: string }
	/** The message itself was refused (too long, bad format): it will never pass. */
	| { kind: "rejected"; reason: string };

const PERMANENT_ROBOT = new Set([300001, 300005, 400101, 400102, 410100, 430101, 430102, 430103, 430104]);

export function classifyAnswer(httpStatus: number, body: unknown): SendOutcome {
	if (httpStatus >= 500 || httpStatus === 429) return { kind: "retry", reason: `HTTP ${httpStatus}` };
	const b = body as { errcode?: unknown; errmsg?: unknown } | null;
	const code = typeof b?.errcode === "number" ? b.errcode : Number(b?.errcode);
	const msg = typeof b?.errmsg === "string" ? b.errmsg.slice(0, 200) : "";
	if (httpStatus >= 400 && !Number.isFinite(code)) return { kind: "misconfigured", reason: `HTTP ${httpStatus}` };
	if (!Number.isFinite(code)) return { kind: "retry", reason: `unreadable answer (HTTP ${httpStatus})` };
	if (code === 0) return { kind: "sent" };
	if (code === -1) return { kind: "retry", reason: `busy (-1 ${msg})` };
	if (code === 130101) return { kind: "throttled", reason: `send too fast (130101 ${msg})` };
	if (code === 310000) return { kind: "misconfigured", reason: `signature, keyword or IP refused (310000 ${msg})` };
	if (PERMANENT_ROBOT.has(code)) return { kind: "disabled", reason: `robot unusable (${code} ${msg})` };
	if (code === 460101 || (code >= 400000 && code < 500000)) return { kind: "rejected", reason: `message refused (${code} ${msg})` };
	return { kind: "retry", reason: `errcode ${code} ${msg}` };
}

export const SEVERITIES = ["P1", "P2", "P3"] as const;
export type Severity = (typeof SEVERITIES)[number];

/** An alert as a message shows it. */
export interface MessageAlert {
	name: string;
	severity: Severity;
	state: "firing" | "resolved";
	labels: Record<string, string>;
	summary: string;
	startsAt: number;
	endsAt: number | null;
	value?: number | string;
	threshold?: number | string;
}

/** The markdown limit is 20 000 bytes; leave room for the title and the "+N more" line. */
export const MAX_MARKDOWN_BYTES = 19_000;

const SHANGHAI = new Intl.DateTimeFormat("zh-CN", { timeZone: "Asia/Shanghai", year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false });

export const shanghaiTime = (ms: number) => `${SHANGHAI.format(new Date(ms)).replace(/\//g, "-")} (UTC+8)`;

function duration(ms: number): string {
	const s = Math.max(0, Math.round(ms / 1000));
	if (s < 60) return `${s} s`;
	if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
	return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

const WHERE_LABELS = ["point", "pointId", "cabinet", "cabinetId", "door", "doorId", "merchantId", "node", "orderId", "paymentId"];

/** One alert as a markdown block, in Chinese and English. */
function alertBlock(a: MessageAlert, now: number): string {
	const where = WHERE_LABELS.filter(k => a.labels[k]).map(k => `${k}=${a.labels[k]}`).join(", ");
	const other = Object.keys(a.labels).filter(k => k !== "alertname" && !WHERE_LABELS.includes(k)).sort().map(k => `${k}=${a.labels[k]}`).join(", ");
	const state = a.state === "firing" ? "🔴 告警 FIRING" : "🟢 恢复 RESOLVED";
	const lines = [
		`#### ${state} [${a.severity}] ${a.name}`,
		`- 摘要 Summary: ${a.summary}`,
		...(where ? [`- 位置 Where: ${where}`] : []),
		...(other ? [`- 标签 Labels: ${other}`] : []),
		`- 开始 Started: ${shanghaiTime(a.startsAt)}`,
		`- 持续 Duration: ${duration((a.endsAt ?? now) - a.startsAt)}`,
		...(a.value !== undefined ? [`- 数值 Value: ${a.value}${a.threshold !== undefined ? ` (阈值 threshold ${a.threshold})` : ""}`] : []),
	];
	return lines.join("\n");
}

const bytes = (s: string) => Buffer.byteLength(s, "utf8");

type RenderOpts = { now: number; keyword?: string; atMobiles?: string[]; msgUuid: string };

/** The message's title and text, and how many of the alerts it shows whole (the rest are "+N more"). */
function layout(alerts: MessageAlert[], opts: RenderOpts): { title: string; text: string; shown: number; mentions: boolean } {
	const sorted = [...alerts].sort((x, y) => SEVERITIES.indexOf(x.severity) - SEVERITIES.indexOf(y.severity) || (x.state === y.state ? 0 : x.state === "firing" ? -1 : 1));
	const worst = sorted[0];
	const firing = sorted.filter(a => a.state === "firing").length;
	const title = `${opts.keyword ? `${opts.keyword} ` : ""}[${worst?.severity ?? "P3"}] ${alerts.length === 1 ? worst.name : `${firing} 告警 firing, ${alerts.length - firing} 恢复 resolved`}`;
	const p1 = sorted.some(a => a.severity === "P1" && a.state === "firing");
	const mention = p1 && opts.atMobiles?.length ? `\n\n${opts.atMobiles.map(m => `@${m}`).join(" ")}` : "";
	let text = `### ${title}\n\n`;
	let shown = 0;
	for (const a of sorted) {
		const block = `${alertBlock(a, opts.now)}\n\n`;
		const more = sorted.length - shown - 1;
		const tail = more > 0 ? `…+${more} more / 另有 ${more} 条\n` : "";
		if (bytes(text) + bytes(block) + bytes(tail) + bytes(mention) > MAX_MARKDOWN_BYTES) break;
		text += block;
		shown++;
	}
	if (shown < sorted.length) text += `…+${sorted.length - shown} more / 另有 ${sorted.length - shown} 条\n`;
	return { title, text: text + mention, shown, mentions: p1 };
}

/** How many of these alerts one message can show whole (a digest takes no more than that). */
export const alertsThatFit = (alerts: MessageAlert[], opts: RenderOpts) => layout(alerts, opts).shown;

/**
 * A DingTalk markdown message for a notification: the title names the worst
 * severity and what; the body lists the alerts (worst first) and is cut to
 * stay under the size limit, saying how many were left out.
 */
export function renderMessage(
	alerts: MessageAlert[],
	opts: RenderOpts,
): { msgtype: "markdown"; markdown: { title: string; text: string }; at: { atMobiles: string[]; isAtAll: false }; msgUuid: string } {
	const { title, text, mentions } = layout(alerts, opts);
	return { msgtype: "markdown", markdown: { title, text }, at: { atMobiles: mentions ? opts.atMobiles ?? [] : [], isAtAll: false }, msgUuid: opts.msgUuid };
}
