/**
 * Runs simulated cabinets that speak PROTOCOL.md over real MQTT:
 *
 *   npm run simulate -- --cabinets 500 --mqtt mqtt://127.0.0.1:1883 [--latency 20-200] [--jam-rate 0.01] [--flap-rate 0.001]
 *
 * Credentials come from the JSON Lines file the seed tool (or the demo seed)
 * writes. A live status line shows the fleet; Ctrl-C stops it, prints a
 * summary and (with --report) writes the physical unlocks per cmdId, so a run
 * can prove "at most one unlock per command".
 */
import fs from "node:fs";
import path from "node:path";
import { loadConfigOrExit } from "../config";
import { SimulatedCabinet, type CabinetCounters } from "./simulator/cabinet";
import { parseFlags, positiveInt, runTool, UsageError } from "./bench/cli";
import { formatTable } from "./bench/table";

export const usage = `npm run simulate -- [options]

  --cabinets N        how many cabinets of the credentials file to run (default all)
  --doors N           doors per cabinet when the file does not list them (default 24)
  --mqtt URL          broker (default MQTT_URL, else the embedded broker on MQTT_PORT)
  --credentials PATH  JSON Lines of {username, password, doors} (default DATA_DIR/cabinet-credentials.jsonl,
                      else DATA_DIR/demo-cabinet-credentials.jsonl)
  --latency A-B       hardware latency per command, ms (default 0)
  --jam-rate P        chance that an open jams (default 0)
  --flap-rate P       chance per cabinet per second of a power cut (back 2-5 s later; default 0)
  --auto-close MS     play the person: close an opened door after MS (default 3000; 0 = never)
  --heartbeat SEC     heartbeat interval (default HEARTBEAT_SEC)
  --report PATH       on exit, write counters and unlocks per cmdId as JSON`;

interface Credential {
	username: string;
	password: string;
	doors?: { no: number; size: string }[];
}

function readCredentials(file: string, limit: number | undefined, defaultDoors: number): Credential[] {
	const lines = fs.readFileSync(file, "utf8").split("\n").filter(l => l.trim());
	const out: Credential[] = [];
	for (const line of lines) {
		const c = JSON.parse(line) as Credential;
		out.push({ ...c, doors: c.doors ?? Array.from({ length: defaultDoors }, (_, i) => ({ no: i + 1, size: "M" })) });
		if (limit !== undefined && out.length >= limit) break;
	}
	return out;
}

function range(text: string | undefined): [number, number] {
	if (!text) return [0, 0];
	const m = /^(\d+)(?:-(\d+))?$/.exec(text);
	if (!m) throw new UsageError(`--latency must look like 20-200 (got "${text}")`);
	const a = Number(m[1]);
	const b = m[2] === undefined ? a : Number(m[2]);
	if (b < a) throw new UsageError("--latency: the upper bound is below the lower one");
	return [a, b];
}

function rate(name: string, text: string | undefined): number {
	if (text === undefined) return 0;
	const v = Number(text);
	if (!Number.isFinite(v) || v < 0 || v > 1) throw new UsageError(`--${name} must be between 0 and 1 (got "${text}")`);
	return v;
}

function total(cabinets: SimulatedCabinet[]): CabinetCounters {
	const sum: CabinetCounters = { commands: 0, badSignature: 0, malformed: 0, duplicates: 0, staleEpoch: 0, expired: 0, unlocks: 0, jams: 0 };
	for (const c of cabinets) for (const k of Object.keys(sum) as (keyof CabinetCounters)[]) sum[k] += c.counters[k];
	return sum;
}

export async function main(argv: string[]): Promise<number> {
	const flags = parseFlags(argv, {
		cabinets: { type: "string" }, doors: { type: "string" }, mqtt: { type: "string" }, credentials: { type: "string" },
		latency: { type: "string" }, "jam-rate": { type: "string" }, "flap-rate": { type: "string" }, "auto-close": { type: "string" },
		heartbeat: { type: "string" }, report: { type: "string" },
	});
	const config = loadConfigOrExit(process.env);
	const limit = flags.cabinets === undefined ? undefined : positiveInt("cabinets", flags.cabinets, 0);
	const defaultDoors = positiveInt("doors", flags.doors, 24);
	const mqttUrl = flags.mqtt ?? config.mqttUrl ?? `mqtt://127.0.0.1:${config.mqttPort}`;
	const candidates = flags.credentials ? [flags.credentials] : ["cabinet-credentials.jsonl", "demo-cabinet-credentials.jsonl"].map(f => path.join(config.dataDir, f));
	const file = candidates.find(f => fs.existsSync(f));
	if (!file) throw new UsageError(`no credentials file (looked for ${candidates.join(", ")}); run npm run seed, or npm start once for the demo fleet`);
	const creds = readCredentials(file, limit, defaultDoors);
	const latencyMs = range(flags.latency);
	const jamRate = rate("jam-rate", flags["jam-rate"]);
	const flapRate = rate("flap-rate", flags["flap-rate"]);
	const autoClose = flags["auto-close"] === undefined ? 3000 : Number(flags["auto-close"]);
	const heartbeatSec = positiveInt("heartbeat", flags.heartbeat, config.heartbeatSec);

	const cabinets = creds.map(c => new SimulatedCabinet({
		cabinetId: c.username, secret: c.password, doors: c.doors!, mqttUrl, latencyMs, jamRate, heartbeatSec,
		autoCloseMs: autoClose > 0 ? autoClose : undefined,
	}));
	for (const c of cabinets) c.on("error", () => undefined); // shown as "connected" in the status line
	console.log(`simulating ${cabinets.length} cabinets (${cabinets.reduce((n, c) => n + c.doors.size, 0)} doors) from ${file} on ${mqttUrl}`);

	// Connect in waves, so the broker and the platform's auth hook are not hit all at once. All of
	// them come from one address: a wave larger than the embedded broker's cap on unauthenticated
	// connections per address would have the excess refused (and retried a second later).
	let started = 0;
	const wave = Math.min(50, config.mqtt.limits.maxPendingPerAddress);
	for (let i = 0; i < cabinets.length; i += wave) {
		await Promise.all(cabinets.slice(i, i + wave).map(c => c.start().then(() => started++, () => undefined)));
		process.stderr.write(`\r  connecting ${started}/${cabinets.length}\x1b[K`);
	}
	process.stderr.write("\n");

	const tty = !!process.stderr.isTTY;
	const t0 = Date.now();
	const flapping = new Set<SimulatedCabinet>();
	const status = setInterval(() => {
		if (flapRate > 0) {
			for (const c of cabinets) {
				if (flapping.has(c) || Math.random() >= flapRate) continue;
				flapping.add(c);
				c.crash();
				setTimeout(() => void c.start().catch(() => undefined).finally(() => flapping.delete(c)), 2000 + Math.random() * 3000);
			}
		}
		const s = total(cabinets);
		const online = cabinets.filter(c => c.connected).length;
		const line = `  ${Math.round((Date.now() - t0) / 1000)}s  online ${online}/${cabinets.length}  commands ${s.commands}  unlocks ${s.unlocks}  jams ${s.jams}  ` +
			`duplicates ${s.duplicates}  stale ${s.staleEpoch}  expired ${s.expired}  bad sig ${s.badSignature}`;
		process.stderr.write(tty ? `\r${line}\x1b[K` : `${line}\n`);
	}, 1000);

	await new Promise<void>(resolve => {
		process.once("SIGINT", resolve);
		process.once("SIGTERM", resolve);
	});
	clearInterval(status);
	process.stderr.write("\n");
	await Promise.all(cabinets.map(c => c.stop().catch(() => undefined)));

	const s = total(cabinets);
	const unlocks: Record<string, number> = {};
	for (const c of cabinets) for (const [cmdId, n] of c.unlocksByCmd) unlocks[cmdId] = (unlocks[cmdId] ?? 0) + n;
	const twice = Object.entries(unlocks).filter(([, n]) => n > 1);
	console.log(formatTable([{ title: "counter" }, { title: "value", align: "right" }], Object.entries(s).map(([k, v]) => [k, String(v)])));
	console.log(twice.length ? `VIOLATION: ${twice.length} commands unlocked more than once` : `at most one unlock per command: yes (${Object.keys(unlocks).length} commands)`);
	if (flags.report) fs.writeFileSync(flags.report, JSON.stringify({ counters: s, unlocks, twice }, null, 2));
	return twice.length ? 1 : 0;
}

if (require.main === module) runTool(main, usage);
