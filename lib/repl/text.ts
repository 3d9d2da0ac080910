/**
 * The operator REPL's pure parts: reading a command's arguments, and turning
 * the platform's answers into text. No broker here (lib/repl/commands.ts
 * makes the calls), so every line the REPL prints is tested on its own.
 *
 * What is printed comes from the mesh and may hold anything (labels, names,
 * error messages): every value is cut to a bound and stripped of control
 * characters, so a hostile label cannot move the cursor or recolour the
 * operator's terminal.
 */

/** A silence's label matcher, as alerts.createSilence takes it. */
export interface Matcher { label: string; value: string; regex?: boolean }

// ---------------------------------------------------------------- arguments

export type OptionKind = "string" | "strings" | "int" | "flag";

export interface ArgSpec {
	/** Positional arguments in order; a trailing `?` makes one optional. */
	positionals: readonly string[];
	options: Readonly<Record<string, OptionKind>>;
}

export interface ParsedArgs {
	positionals: Record<string, string | undefined>;
	options: Record<string, string | string[] | number | boolean | undefined>;
}

export type Parsed<T> = { ok: true; value: T } | { ok: false; error: string };

const MAX_TOKEN = 500;
const MAX_TOKENS = 40;

/**
 * `tokens` as the shell-like splitter left them (quotes already removed):
 * positionals, `--name value`, `--name=value`, and `--flag`. Unknown options,
 * a missing value, too many or too few positionals are errors that name the fix.
 */
export function parseArgs(tokens: readonly string[], spec: ArgSpec): Parsed<ParsedArgs> {
	if (tokens.length > MAX_TOKENS) return { ok: false, error: `too many arguments (at most ${MAX_TOKENS})` };
	const long = tokens.find(t => t.length > MAX_TOKEN);
	if (long !== undefined) return { ok: false, error: `an argument is longer than ${MAX_TOKEN} characters` };
	const positionals: string[] = [];
	const options: ParsedArgs["options"] = {};
	for (let i = 0; i < tokens.length; i++) {
		const token = tokens[i];
		if (!token.startsWith("--") || token === "--") {
			positionals.push(token);
			continue;
		}
		const eq = token.indexOf("=");
		const name = token.slice(2, eq === -1 ? undefined : eq);
		const kind = Object.prototype.hasOwnProperty.call(spec.options, name) ? spec.options[name] : undefined;
		if (!kind) {
			const known = Object.keys(spec.options).map(o => `--${o}`).join(", ");
			return { ok: false, error: `unknown option --${clean(name, 40)}${known ? ` (known: ${known})` : " (this command takes none)"}` };
		}
		if (kind === "flag") {
			if (eq !== -1) return { ok: false, error: `--${name} takes no value` };
			options[name] = true;
			continue;
		}
		let value: string;
		if (eq !== -1) value = token.slice(eq + 1);
		else {
			if (i + 1 >= tokens.length || tokens[i + 1].startsWith("--")) return { ok: false, error: `--${name} needs a value` };
			value = tokens[++i];
		}
		if (kind === "int") {
			if (!/^\d{1,9}$/.test(value) || Number(value) < 1) return { ok: false, error: `--${name} must be a whole number ≥ 1, not "${clean(value, 40)}"` };
			options[name] = Number(value);
		} else if (kind === "strings") {
			options[name] = [...((options[name] as string[] | undefined) ?? []), value];
		} else options[name] = value;
	}
	const names = spec.positionals.map(p => p.replace(/\?$/, ""));
	const required = spec.positionals.filter(p => !p.endsWith("?")).length;
	if (positionals.length < required) return { ok: false, error: `missing <${names[positionals.length]}>` };
	if (positionals.length > names.length) return { ok: false, error: `unexpected argument "${clean(positionals[names.length], 40)}"` };
	return { ok: true, value: { positionals: Object.fromEntries(names.map((n, i) => [n, positionals[i]])), options } };
}

const UNIT_MS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
export const MAX_SILENCE_MS = 30 * UNIT_MS.d;

/** `90s`, `45m`, `2h`, `1h30m`, `7d` → milliseconds; from one minute up to 30 days. */
export function parseDuration(text: string): Parsed<number> {
	const t = text.trim().toLowerCase();
	if (!/^(\d{1,6}[smhd])+$/.test(t)) return { ok: false, error: `"${clean(text, 40)}" is not a duration (e.g. 30m, 2h, 1h30m, 3d)` };
	let ms = 0;
	for (const [, n, unit] of t.matchAll(/(\d+)([smhd])/g)) ms += Number(n) * UNIT_MS[unit];
	if (ms < UNIT_MS.m) return { ok: false, error: "a silence lasts at least 1m" };
	if (ms > MAX_SILENCE_MS) return { ok: false, error: "a silence lasts at most 30d" };
	return { ok: true, value: ms };
}

const LABEL_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,99}$/;

/** `cabinetId=cab_1` (equal) or `name=~Cabinet.*` (anchored regular expression), as Alertmanager writes them. */
export function parseMatcher(text: string): Parsed<Matcher> {
	const eq = text.indexOf("=");
	const label = eq === -1 ? "" : text.slice(0, eq);
	if (!LABEL_NAME.test(label)) return { ok: false, error: `--label wants name=value or name=~regex, not "${clean(text, 60)}"` };
	const regex = text[eq + 1] === "~";
	const value = text.slice(eq + (regex ? 2 : 1));
	if (value.length > 200) return { ok: false, error: `the value of label ${label} is longer than 200 characters` };
	if (regex) {
		try {
			new RegExp(value);
		} catch {
			return { ok: false, error: `not a regular expression: ${clean(value, 60)}` };
		}
		return { ok: true, value: { label, value, regex: true } };
	}
	return { ok: true, value: { label, value } };
}

/** Only an explicit yes confirms. */
export const isYes = (answer: string): boolean => /^\s*y(es)?\s*$/i.test(answer);

// ---------------------------------------------------------------- text

// C0/C1 controls, DEL, and the bidirectional overrides that can reorder what a terminal shows.
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/g;

/** A value as one safe line of at most `max` characters. */
export function clean(value: unknown, max = 80): string {
	const s = (typeof value === "string" ? value : value === undefined || value === null ? "-" : typeof value === "object" ? JSON.stringify(value) : String(value)).replace(UNSAFE, "?");
	const chars = [...s];
	return chars.length > max ? chars.slice(0, max - 1).join("") + "…" : s;
}

/** Columns a string takes in a terminal: CJK and full-width characters take two (point names are Chinese). */
export function displayWidth(s: string): number {
	let w = 0;
	for (const ch of s) {
		const c = ch.codePointAt(0)!;
		const wide = (c >= 0x1100 && c <= 0x115f) || (c >= 0x2e80 && c <= 0xa4cf) || (c >= 0xac00 && c <= 0xd7a3) || (c >= 0xf900 && c <= 0xfaff)
			|| (c >= 0xfe30 && c <= 0xfe4f) || (c >= 0xff00 && c <= 0xff60) || (c >= 0xffe0 && c <= 0xffe6) || (c >= 0x20000 && c <= 0x3fffd);
		w += wide ? 2 : 1;
	}
	return w;
}

const pad = (s: string, width: number) => s + " ".repeat(Math.max(0, width - displayWidth(s)));

/** A plain-text table (header, rule, rows) of `columns`; `(none)` when there are no rows. */
export function formatTable(rows: readonly Record<string, unknown>[], columns: readonly string[], maxCell = 60): string {
	if (!rows.length) return "(none)";
	const cells = rows.map(r => columns.map(c => clean(r[c], maxCell)));
	const widths = columns.map((c, i) => Math.max(displayWidth(c), ...cells.map(row => displayWidth(row[i]))));
	const line = (vals: string[]) => vals.map((v, i) => (i === vals.length - 1 ? v : pad(v, widths[i]))).join("  ").trimEnd();
	return [line([...columns]), line(widths.map(w => "-".repeat(w))), ...cells.map(line)].join("\n");
}

const yesNo = (v: boolean | null | undefined) => (v === null || v === undefined ? "unknown" : v ? "yes" : "no");

/** "page 1 of 3 (45 …)" and how to see the next one. */
export function pageFooter(p: { total: number; page: number; pageSize: number }, noun: string, next: string): string {
	const pages = Math.max(1, Math.ceil(p.total / p.pageSize));
	const more = p.page < pages ? ` — next: ${next} --page ${p.page + 1}` : "";
	return `page ${p.page} of ${pages} (${p.total} ${noun})${more}`;
}

export interface DoorAnswer {
	id: string; cabinetId: string; pointId: string; no: number; size: string; disabled: boolean;
	state: string | null; open: boolean | null; occupied: boolean | null; orderId?: string | null; live: boolean; liveError?: string;
}

export function formatDoor(d: DoorAnswer): string {
	const lines = [
		`door ${clean(d.id)}  (no ${clean(d.no)}, size ${clean(d.size)}) in cabinet ${clean(d.cabinetId)} at point ${clean(d.pointId)}`,
		d.live
			? `state ${clean(d.state)}  open ${yesNo(d.open)}  occupied ${yesNo(d.occupied)}${d.orderId ? `  order ${clean(d.orderId)}` : ""}${d.disabled ? "  (disabled)" : ""}`
			: `live state unknown (${clean(d.liveError ?? "SERVICE_UNAVAILABLE")}): the doors node could not be asked${d.disabled ? "; the door is disabled" : ""}`,
	];
	return lines.join("\n");
}

export interface CabinetAnswer {
	id: string; pointId: string; merchantId: string; online: boolean | null; lastSeenAt: string | null; live: boolean; liveError?: string;
	doors: { id: string; no: number; size: string; state: string | null; open: boolean | null; occupied: boolean | null; orderId?: string }[];
}

export function formatCabinet(c: CabinetAnswer): string {
	const head = `cabinet ${clean(c.id)} at point ${clean(c.pointId)} (merchant ${clean(c.merchantId)})`;
	const link = c.live
		? `online ${yesNo(c.online)}  last seen ${clean(c.lastSeenAt ?? "never")}`
		: `live state unknown (${clean(c.liveError ?? "SERVICE_UNAVAILABLE")}): the doors node could not be asked`;
	const doors = formatTable(
		c.doors.map(d => ({ door: d.id, size: d.size, state: d.state ?? "unknown", open: yesNo(d.open), occupied: yesNo(d.occupied), order: d.orderId ?? "" })),
		["door", "size", "state", "open", "occupied", "order"],
	);
	return [head, link, doors].join("\n");
}

export interface CabinetRow { id: string; pointId: string; pointName: string; merchantId: string; cityCode: string; online: boolean | null; lastSeenAt: string | null }
export interface Page<T> { rows: T[]; total: number; page: number; pageSize: number }

export function formatOffline(p: Page<CabinetRow> & { partial?: boolean; unavailable?: unknown[] }): string {
	const out: string[] = [];
	if (p.partial) {
		const which = (p.unavailable ?? []).slice(0, 10).map(u => clean(u, 60)).join(", ");
		out.push(`WARNING: partial answer — some doors nodes could not be asked${which ? ` (${which})` : ""}; their cabinets are missing below.`);
	}
	if (!p.rows.length && p.total === 0) out.push("No cabinet is offline.");
	else {
		out.push(formatTable(p.rows.map(r => ({ cabinet: r.id, city: r.cityCode, point: r.pointName, pointId: r.pointId, merchant: r.merchantId, // online null: its doors node was not asked, it may be offline (listed, not guessed).
			lastSeen: r.online === null ? "unknown (doors node not asked)" : r.lastSeenAt ?? "never" })),
			["cabinet", "city", "point", "pointId", "merchant", "lastSeen"], 40));
		out.push(pageFooter(p, "offline", "offline"));
	}
	return out.join("\n");
}

export interface OrderAnswer {
	id: string; userId: string; pointId: string; cabinetId: string; doorId: string; size: string; status: string;
	reservedUntil: string; storedFrom: string | null; amountFen: number | null; paidAt: string | null; completedAt: string | null;
	anomalies: string[]; refundProposed: { reason: string; at: string } | null; createdAt: string; updatedAt: string;
}

/** Integer fen as yuan with two decimals (never through floating point). */
export function fenToYuan(fen: number): string {
	const sign = fen < 0 ? "-" : "";
	const a = Math.abs(Math.trunc(fen));
	return `¥${sign}${Math.floor(a / 100)}.${String(a % 100).padStart(2, "0")}`;
}

export function formatOrder(o: OrderAnswer): string {
	const rows: [string, unknown][] = [
		["order", o.id], ["status", o.status], ["user", o.userId], ["point", o.pointId], ["door", `${clean(o.doorId)} (size ${clean(o.size)})`],
		["created", o.createdAt], ["reserved until", o.reservedUntil], ["stored from", o.storedFrom ?? "-"],
		["amount", o.amountFen === null ? "-" : fenToYuan(o.amountFen)], ["paid", o.paidAt ?? "-"], ["completed", o.completedAt ?? "-"],
		["updated", o.updatedAt],
	];
	if (o.anomalies.length) rows.push(["anomalies", o.anomalies.slice(0, 10).map(a => clean(a, 60)).join(", ")]);
	if (o.refundProposed) rows.push(["refund proposed", `${clean(o.refundProposed.reason, 100)} (${clean(o.refundProposed.at)})`]);
	const w = Math.max(...rows.map(([k]) => k.length));
	return rows.map(([k, v]) => `${k.padEnd(w)}  ${clean(v, 100)}`).join("\n");
}

export interface AlertRow {
	id: string; name: string; severity: string; state: string; labels: Record<string, string>; summary: string;
	startsAt: string | null; endsAt: string | null; silencedBy?: string; inhibitedBy?: string;
}

const labelText = (labels: Record<string, string>) => Object.entries(labels ?? {}).slice(0, 8).map(([k, v]) => `${clean(k, 30)}=${clean(v, 40)}`).join(" ");

export function formatAlerts(p: Page<AlertRow>, state: string): string {
	if (!p.rows.length && p.total === 0) return state === "firing" ? "No alert is firing." : `No ${state === "all" ? "" : `${state} `}alert.`;
	const table = formatTable(p.rows.map(a => ({
		severity: a.severity, alert: a.name, since: a.startsAt ?? "-", labels: labelText(a.labels), summary: a.summary,
		muted: a.silencedBy ? `silenced ${a.silencedBy}` : a.inhibitedBy ? `inhibited by ${a.inhibitedBy}` : "",
		...(state === "firing" ? {} : { state: a.state }),
	})), state === "firing" ? ["severity", "alert", "since", "labels", "summary", "muted"] : ["severity", "alert", "state", "since", "labels", "summary", "muted"], 70);
	return `${table}\n${pageFooter(p, state === "all" ? "alerts" : state, state === "firing" ? "alerts" : `alerts --state ${state}`)}`;
}

export interface SilenceRow { id: string; matchers: Matcher[]; startsAt: string; endsAt: string; comment: string; createdBy: string }

export const matcherText = (m: Matcher) => `${clean(m.label, 40)}${m.regex ? "=~" : "="}${clean(m.value, 60)}`;

export function formatSilences(p: Page<SilenceRow>): string {
	if (!p.rows.length && p.total === 0) return "No silence in force.";
	const table = formatTable(p.rows.map(s => ({ id: s.id, matchers: s.matchers.map(matcherText).join(" "), from: s.startsAt, until: s.endsAt, by: s.createdBy, comment: s.comment })),
		["id", "matchers", "from", "until", "by", "comment"], 60);
	return `${table}\n${pageFooter(p, "silences", "silence")}`;
}

export function formatSilenceCreated(s: SilenceRow): string {
	return `silence ${clean(s.id)} created: ${s.matchers.map(matcherText).join(" ")} until ${clean(s.endsAt)} (by ${clean(s.createdBy)}) — end it early: silence end ${clean(s.id)}`;
}

/** The question asked before a door opens: what will open, and why. */
export function formatOpenQuestion(doorId: string, reason: string, door: DoorAnswer | null): string {
	const what = door
		? door.live ? `${clean(door.state)}${door.occupied ? ", holds a bag" : ""}${door.orderId ? `, order ${clean(door.orderId)}` : ""}` : "live state unknown"
		: "state not known";
	return `Open door ${clean(doorId)} (${what}) now, reason "${clean(reason, 200)}"? [y/N] `;
}

export interface OpenedDoor { id: string; state: string; open: boolean; occupied: boolean; orderId?: string | null }

/** The open's answer comes with the cabinet's ack (unlocked); the door reports itself open a moment later. */
export const formatOpened = (d: OpenedDoor) =>
	`door ${clean(d.id)} unlocked: the cabinet acknowledged; state ${clean(d.state)}, occupied ${yesNo(d.occupied)}${d.orderId ? `, order ${clean(d.orderId)}` : ""} (audited)`;

/** An error from the platform (a plain object across the mesh: read type and code, never instanceof). */
export function formatError(err: unknown): string {
	const e = (err ?? {}) as { message?: unknown; type?: unknown; code?: unknown; data?: unknown };
	const type = typeof e.type === "string" ? e.type : "ERROR";
	if (type === "SERVICE_NOT_FOUND" || type === "SERVICE_NOT_AVAILABLE") {
		const action = (e.data as { action?: unknown } | undefined)?.action;
		return `error: ${clean(action ?? "the action", 80)} is not offered by any node of the mesh (${type}): is its service running, on this NAMESPACE?`;
	}
	let text = `error ${typeof e.code === "number" ? `${e.code} ` : ""}${clean(type, 40)}: ${clean(e.message ?? "unknown error", 300)}`;
	if (Array.isArray(e.data)) {
		const fields = e.data.slice(0, 5).map((f: { field?: unknown; message?: unknown }) => `${clean(f?.field, 40)}: ${clean(f?.message, 120)}`);
		if (fields.length) text += `\n  ${fields.join("\n  ")}`;
	}
	return text;
}

// ---------------------------------------------------------------- the mesh

/** A NATS URL without its credentials. */
export const maskUrl = (url: string) => url.replace(/\/\/[^@/]*@/, "//***@");

/** The nodes (`nodeID`s) that host at least one of the platform's services. */
export function platformNodes(services: readonly { name: string; nodeID: string }[], platform: readonly string[]): string[] {
	return [...new Set(services.filter(s => platform.includes(s.name)).map(s => s.nodeID))].sort();
}

export function noPlatformWarning(namespace: string, transporter: string | null, knownNodes: readonly string[]): string {
	const via = transporter ? `transporter ${maskUrl(transporter)}` : "no transporter (embedded)";
	const others = knownNodes.length ? `it knows only ${knownNodes.slice(0, 10).map(n => clean(n, 60)).join(", ")}` : "it knows no other node";
	return `WARNING: no platform node found on namespace "${clean(namespace, 60)}" via ${via}; ${others}.\n` +
		"  Check NAMESPACE and TRANSPORTER (they must match the platform's nodes); nothing was asked.";
}
