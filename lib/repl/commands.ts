/**
 * The operator REPL's commands, one set for both ways of running it:
 * `npm run repl` (a node that joins the mesh and hosts nothing) and
 * `npm start -- --repl` (the embedded platform's own process). Each command
 * is a thin action: parse the tokens (lib/repl/text.ts), call the platform,
 * print the text the pure formatters make.
 *
 * Identity: every call carries `meta.user = {id: "repl:<os user>@<host>",
 * roles: ["operator"]}` and a `requestId` `repl-…`. The mesh is the trust
 * boundary (the access middleware checks rules only on calls from the
 * gateway), so the roles do not open doors the REPL could not open anyway;
 * they make the services treat the call as staff's (merchant isolation,
 * order scopes) and make the audit log name who did it and from where: the
 * audit entry of `open` has actorId `repl:…`, actorRoles ["operator"], the
 * reason, and the requestId. Operator rather than admin: the least role
 * that covers what the commands do.
 */
import crypto from "node:crypto";
import os from "node:os";
import type { ServiceBroker } from "moleculer";
import { ALL_SERVICES } from "../../config";
import type { AuthUser } from "../../types/auth";
import {
	clean, formatAlerts, formatCabinet, formatDoor, formatError, formatOffline, formatOpenQuestion, formatOpened, formatOrder, formatSilenceCreated,
	formatSilences, formatTable, isYes, noPlatformWarning, parseArgs, parseDuration, parseMatcher, platformNodes,
	type AlertRow, type ArgSpec, type CabinetAnswer, type CabinetRow, type DoorAnswer, type Matcher, type OpenedDoor, type OrderAnswer, type Page,
	type ParsedArgs, type SilenceRow,
} from "./text";

export interface ReplIO {
	print(text: string): void;
	/** Asks a yes/no question; resolves true only for an explicit yes. */
	confirm(question: string): Promise<boolean>;
}

export interface ReplSession {
	broker: ServiceBroker;
	io: ReplIO;
	user: AuthUser;
	namespace: string;
	transporter: string | null;
}

interface Command {
	name: string;
	/** Shown in `help`, e.g. `open <doorId> --reason <text> [--yes]`. */
	usage: string;
	description: string;
	args: ArgSpec;
	run(s: ReplSession, a: ParsedArgs): Promise<void>;
}

/** Who the REPL is in `meta.user` (see the file comment). */
export function replUser(): AuthUser {
	let name: string;
	try {
		name = os.userInfo().username;
	} catch {
		// A container user without a passwd entry.
		name = process.env.USER ?? `uid${process.getuid?.() ?? "?"}`;
	}
	return { id: `repl:${name}@${os.hostname()}`, roles: ["operator"], sid: "repl" };
}

function call<T>(s: ReplSession, action: string, params: object, opts: { timeout?: number } = {}): Promise<T> {
	return s.broker.call<T, object>(action, params, { ...opts, meta: { user: s.user, requestId: `repl-${crypto.randomUUID()}` } });
}

/** The nodes of the mesh (this one included) that host a platform service. */
export function knownPlatformNodes(broker: ServiceBroker): string[] {
	return platformNodes(broker.registry.getServiceList({ onlyAvailable: true, skipInternal: true }) as { name: string; nodeID: string }[], ALL_SERVICES);
}

function otherNodes(broker: ServiceBroker): string[] {
	return (broker.registry.getNodeList({ onlyAvailable: true, withServices: false }) as { id: string }[]).map(n => n.id).filter(id => id !== broker.nodeID);
}

export const warningText = (s: ReplSession) => noPlatformWarning(s.namespace, s.transporter, otherNodes(s.broker));

const page = (a: ParsedArgs) => ({ page: (a.options.page as number | undefined) ?? 1, pageSize: Math.min(100, (a.options.pageSize as number | undefined) ?? 20) });
const pageOptions = { page: "int", pageSize: "int" } as const;

export const COMMANDS: Command[] = [
	{
		name: "door",
		usage: "door <doorId>",
		description: "A door: its cabinet and point, size, live state, order (GET /doors/:doorId)",
		args: { positionals: ["doorId"], options: {} },
		async run(s, a) {
			s.io.print(formatDoor(await call<DoorAnswer>(s, "merchants.getDoor", { doorId: a.positionals.doorId })));
		},
	},
	{
		name: "cabinet",
		usage: "cabinet <cabinetId>",
		description: "A cabinet with its doors as a table (GET /cabinets/:id)",
		args: { positionals: ["cabinetId"], options: {} },
		async run(s, a) {
			s.io.print(formatCabinet(await call<CabinetAnswer>(s, "merchants.getCabinet", { id: a.positionals.cabinetId })));
		},
	},
	{
		name: "offline",
		usage: "offline [--page N] [--pageSize N]",
		description: "Cabinets offline now, a page at a time (GET /cabinets?online=false)",
		args: { positionals: [], options: pageOptions },
		async run(s, a) {
			s.io.print(formatOffline(await call<Page<CabinetRow> & { partial?: boolean; unavailable?: unknown[] }>(s, "merchants.listCabinets", { online: false, ...page(a) })));
		},
	},
	{
		name: "open",
		usage: "open <doorId> --reason <text> [--yes]",
		description: "Open a door remotely, audited with the reason; asks to confirm (--yes skips the question)",
		args: { positionals: ["doorId"], options: { reason: "string", yes: "flag" } },
		async run(s, a) {
			const doorId = a.positionals.doorId!;
			const reason = ((a.options.reason as string | undefined) ?? "").trim();
			if (reason.length < 3) {
				s.io.print('open needs --reason "<why>" (3 to 200 characters): it goes to the audit log');
				return;
			}
			if (!a.options.yes) {
				// Show what would open; a door that cannot be read is still asked about (the open decides).
				const door = await call<DoorAnswer>(s, "merchants.getDoor", { doorId }).catch(() => null);
				if (!(await s.io.confirm(formatOpenQuestion(doorId, reason, door)))) {
					s.io.print("Not sent: the door stays closed.");
					return;
				}
			}
			s.io.print(formatOpened(await call<OpenedDoor>(s, "merchants.openDoor", { doorId, reason })));
		},
	},
	{
		name: "order",
		usage: "order <orderId>",
		description: "An order: status, door, times, amount, anomalies (GET /orders/:id)",
		args: { positionals: ["orderId"], options: {} },
		async run(s, a) {
			s.io.print(formatOrder(await call<OrderAnswer>(s, "orders.get", { id: a.positionals.orderId })));
		},
	},
	{
		name: "alerts",
		usage: "alerts [--state firing|pending|resolved|all] [--page N] [--pageSize N]",
		description: "Firing alerts (or --state …) with labels and silences (GET /alerts)",
		args: { positionals: [], options: { state: "string", ...pageOptions } },
		async run(s, a) {
			const state = (a.options.state as string | undefined) ?? "firing";
			s.io.print(formatAlerts(await call<Page<AlertRow>>(s, "alerts.list", { state, ...page(a) }), state));
		},
	},
	{
		name: "silence",
		usage: "silence [--page N] | silence --label k=v [--label k=~re …] --for 2h --comment <text> | silence end <silenceId>",
		description: "List silences in force; create one (labels, duration, comment); end one now",
		args: { positionals: ["sub?", "silenceId?"], options: { label: "strings", for: "string", comment: "string", ...pageOptions } },
		async run(s, a) {
			const { sub, silenceId } = a.positionals;
			const labels = (a.options.label as string[] | undefined) ?? [];
			if (sub === "end") {
				if (!silenceId) return s.io.print("usage: silence end <silenceId>");
				const ended = await call<{ id: string; endsAt: string }>(s, "alerts.expireSilence", { id: silenceId });
				return s.io.print(`silence ${clean(ended.id)} ended at ${clean(ended.endsAt)}`);
			}
			if (sub !== undefined) return s.io.print(`unknown "silence ${clean(sub, 40)}": use silence, silence --label … --for … --comment …, or silence end <id>`);
			if (!labels.length && a.options.for === undefined && a.options.comment === undefined) {
				return s.io.print(formatSilences(await call<Page<SilenceRow>>(s, "alerts.listSilences", page(a))));
			}
			const matchers: Matcher[] = [];
			for (const l of labels) {
				const m = parseMatcher(l);
				if (!m.ok) return s.io.print(m.error);
				matchers.push(m.value);
			}
			if (!matchers.length) return s.io.print("a silence needs at least one --label name=value");
			const duration = parseDuration((a.options.for as string | undefined) ?? "");
			if (!duration.ok) return s.io.print(`--for: ${duration.error}`);
			const comment = ((a.options.comment as string | undefined) ?? "").trim();
			if (!comment) return s.io.print('a silence needs --comment "<why>"');
			const created = await call<SilenceRow>(s, "alerts.createSilence", { matchers, endsAt: new Date(Date.now() + duration.value).toISOString(), comment });
			s.io.print(formatSilenceCreated(created));
		},
	},
	{
		name: "whoami",
		usage: "whoami <userId>",
		description: "A user account by id",
		args: { positionals: ["userId"], options: {} },
		async run(s, a) {
			const u = await call<Record<string, unknown>>(s, "users.get", { id: a.positionals.userId });
			s.io.print(Object.entries(u).map(([k, v]) => `${k}: ${clean(v, 120)}`).join("\n"));
		},
	},
	{
		name: "doors",
		usage: "doors",
		description: "Each doors node's cabinets (held, online), resident door actors, and each MQTT bridge's message counts",
		args: { positionals: [], options: {} },
		async run(s) {
			const on = (name: string) => (s.broker.registry.getServiceList({ onlyAvailable: true }) as { name: string; nodeID: string }[]).filter(x => x.name === name).map(x => x.nodeID);
			// One call per node (a plain call would reach only one of them).
			const doors = await Promise.all(on("doors").map(nodeID => s.broker.call<any, object>("doors.stats", {}, { nodeID })));
			s.io.print(formatTable(doors.map(d => ({ node: d.nodeID, cabinets: d.cabinets, online: d.online, residentDoors: d.residentDoors, malformed: d.malformed })), ["node", "cabinets", "online", "residentDoors", "malformed"]));
			const bridges = await Promise.all(on("hardware").map(nodeID => s.broker.call<any, object>("hardware.stats", {}, { nodeID })));
			for (const h of bridges) s.io.print(`${clean(h.nodeID)}: connected=${h.connected} embedded=${h.embedded} ${clean(h.messages, 300)}`);
		},
	},
	{
		name: "geo",
		usage: "geo",
		description: "Each geo replica's index size, H3 resolution and nearby cache hit rate",
		args: { positionals: [], options: {} },
		async run(s) {
			const nodes = (s.broker.registry.getServiceList({ onlyAvailable: true }) as { name: string; nodeID: string }[]).filter(x => x.name === "geo").map(x => x.nodeID);
			const rows = await Promise.all(nodes.map(async nodeID => ({ nodeID, ...(await s.broker.call<any, object>("geo.stats", {}, { nodeID })) })));
			s.io.print(formatTable(rows.map(r => ({ node: r.nodeID, points: r.points, res: r.resolution, cells: r.cells, hitRate: `${(100 * r.cache.hitRate).toFixed(1)} %` })), ["node", "points", "res", "cells", "hitRate"]));
		},
	},
];

/**
 * Runs one command line's tokens: argument errors and platform errors are
 * printed, never thrown; with no platform node known, the warning is printed
 * instead of asking (an empty table would look like "all is well").
 */
export async function runCommand(s: ReplSession, name: string, tokens: readonly string[]): Promise<void> {
	const cmd = COMMANDS.find(c => c.name === name);
	if (!cmd) return s.io.print(`unknown command ${clean(name, 40)}`);
	const parsed = parseArgs(tokens, cmd.args);
	if (!parsed.ok) return s.io.print(`${parsed.error}\nusage: ${cmd.usage}`);
	if (!knownPlatformNodes(s.broker).length) return s.io.print(warningText(s));
	try {
		await cmd.run(s, parsed.value);
	} catch (err) {
		s.io.print(formatError(err));
	}
}

/**
 * Resolves once a node hosting a platform service is known, or false after
 * `ms` (discovery over NATS takes a round trip after joining).
 */
export function waitForPlatform(broker: ServiceBroker, ms: number): Promise<boolean> {
	if (knownPlatformNodes(broker).length) return Promise.resolve(true);
	return new Promise(resolve => {
		const check = () => {
			if (!knownPlatformNodes(broker).length) return;
			done(true);
		};
		const timer = setTimeout(() => done(false), ms);
		const done = (found: boolean) => {
			clearTimeout(timer);
			broker.localBus.off("$services.changed", check);
			broker.localBus.off("$node.connected", check);
			resolve(found);
		};
		broker.localBus.on("$services.changed", check);
		broker.localBus.on("$node.connected", check);
	});
}

export interface ReplOptions {
	namespace: string;
	transporter: string | null;
	/** How long to wait for the first platform node before warning (default 3 s). */
	discoveryMs?: number;
}

/**
 * Opens moleculer-repl on `broker` with these commands beside its own
 * (`call`, `nodes`, `services`, …). `open` asks through the REPL's own line
 * reader (readline's `question`), so the answer is not taken as a command.
 */
export async function openRepl(broker: ServiceBroker, opts: ReplOptions): Promise<void> {
	// eslint-disable-next-line @typescript-eslint/no-require-imports
	const REPL = require("moleculer-repl") as (b: ServiceBroker, o: object) => { question(q: string, cb: (a: string) => void): void; displayPrompt(): void };
	let server: ReturnType<typeof REPL> | undefined;
	const session: ReplSession = {
		broker, user: replUser(), namespace: opts.namespace, transporter: opts.transporter,
		io: {
			print: text => console.log(text),
			confirm: question => new Promise(resolve => (server ? server.question(question, answer => resolve(isYes(answer))) : resolve(false))),
		},
	};
	const customCommands = COMMANDS.map(c => ({
		command: c.name,
		description: `${c.description}. Usage: ${c.usage}`,
		// Our own parser reads the tokens (quotes already split by the REPL): repeated options, strict errors.
		allowUnknownOptions: true,
		parse(this: unknown, cmd: { args: string[]; params?: unknown }) {
			cmd.params = { tokens: [...cmd.args] };
		},
		async action(_b: ServiceBroker, params: { tokens: string[] }) {
			await runCommand(session, c.name, params.tokens);
		},
	}));
	const found = await waitForPlatform(broker, opts.discoveryMs ?? 3000);
	console.log(`REPL as ${session.user.id} (roles ${session.user.roles.join(",")}) on namespace "${clean(opts.namespace, 60)}". Commands: ${COMMANDS.map(c => c.name).join(", ")}; help for all.`);
	if (!found) console.log(warningText(session));
	server = REPL(broker, { customCommands, delimiter: "lockers $" });
}
