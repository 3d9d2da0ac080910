/**
 * `npm run repl` as the operator runs it: tools/repl.ts as a child process on
 * the real NATS, driven over stdin, against platform nodes on the mesh (this
 * process: merchants, doors, hardware with its embedded MQTT broker, alerts,
 * orders) with a simulated cabinet. Then the same REPL on a namespace where
 * no platform node lives: a warning instead of empty tables.
 */
import { spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { loadConfig } from "../../config";
import { startNode, type StartedNode } from "../../server";
import { SimulatedCabinet } from "../../tools/simulator/cabinet";
import { formatDoorId } from "../../domain/protocol";
import { registerCabinet, type RegisteredCabinet } from "../support/catalog";
import { waitFor } from "../support/processes";

jest.setTimeout(90_000);

const NATS = process.env.NATS_URL ?? "nats://127.0.0.1:4222";
const ROOT = path.resolve(__dirname, "../..");
const PROMPT = "lockers $ ";

/** The REPL child: `run(line)` writes one line and resolves with what it printed up to the next prompt. */
class ReplProcess {
	readonly proc: ChildProcess;
	private out = "";
	private read = 0;

	constructor(namespace: string, readonly home: string) {
		this.proc = spawn(process.execPath, ["--import", "tsx", "tools/repl.ts"], {
			cwd: ROOT,
			// HOME: moleculer-repl keeps its history there; not in the developer's own.
			env: { ...process.env, NODE_ENV: "test", LOG_LEVEL: "warn", TRANSPORTER: NATS, NAMESPACE: namespace, HOME: home },
			stdio: ["pipe", "pipe", "pipe"],
		});
		this.proc.stdout!.on("data", d => (this.out += d));
		this.proc.stderr!.on("data", d => (this.out += d));
	}

	/** Output since the last read, once `marker` has appeared in it. */
	async until(marker: string, what: string): Promise<string> {
		const from = this.read;
		const at = await waitFor(what, async () => {
			if (this.proc.exitCode !== null) throw new Error(`the REPL exited (${this.proc.exitCode}): ${this.out}`);
			const i = this.out.indexOf(marker, from);
			return i === -1 ? undefined : i;
		}, 30_000, 20);
		this.read = at + marker.length;
		return this.out.slice(from, at);
	}

	write(line: string) {
		this.proc.stdin!.write(`${line}\n`);
	}

	run(line: string): Promise<string> {
		this.write(line);
		return this.until(PROMPT, `the answer to "${line}"`).then(t => t.trim());
	}

	async close(): Promise<number | null> {
		if (this.proc.exitCode !== null || this.proc.signalCode !== null) return this.proc.exitCode;
		const exited = new Promise<number | null>(resolve => this.proc.once("exit", code => resolve(code)));
		this.proc.stdin!.end(); // end of input: the REPL stops its broker and exits
		const timer = setTimeout(() => this.proc.kill("SIGKILL"), 10_000);
		const code = await exited;
		clearTimeout(timer);
		return code;
	}
}

describe("npm run repl on the real NATS", () => {
	const namespace = `e2e-repl-${process.pid}`;
	const home = fs.mkdtempSync(path.join(os.tmpdir(), "lockers-repl-home-"));
	let platform: StartedNode;
	let online: RegisteredCabinet;
	let never: RegisteredCabinet;
	let sim: SimulatedCabinet;
	const repls: ReplProcess[] = [];

	beforeAll(async () => {
		const config = loadConfig({
			NODE_ENV: "test", LOG_LEVEL: "error", TRANSPORTER: NATS, NAMESPACE: namespace, SERVICES: "merchants,doors,hardware,alerts,orders",
			MQTT_PORT: "0", METRICS: "false", DEMO_SEED: "false", HEARTBEAT_SEC: "1", ALERTS_TICK_MS: "100",
		});
		platform = await startNode(config, { dataDir: null });
		const broker = platform.broker;
		const mqttUrl = (await broker.call<{ url: string }, object>("hardware.endpoint", {})).url;
		online = await registerCabinet(broker, [{ no: 1, size: "S" }, { no: 2, size: "M" }]);
		never = await registerCabinet(broker, [{ no: 1, size: "L" }], online);
		sim = new SimulatedCabinet({ cabinetId: online.cabinetId, secret: online.secret, doors: online.doors, mqttUrl, heartbeatSec: 1 });
		await sim.start();
		await waitFor("the cabinet online", async () => ((await broker.call<any, any>("doors.cabinet", { cabinetId: online.cabinetId })).online ? true : undefined));
		await broker.call("alerts.signal", { rule: "UnlockFailureRate", labels: { cabinetId: online.cabinetId }, active: true, summary: `unlocks failing on ${online.cabinetId}` });
		await waitFor("the alert firing", async () => ((await broker.call<any, any>("alerts.list", {})).rows.length ? true : undefined));
	});

	afterAll(async () => {
		for (const r of repls) await r.close();
		await sim?.stop().catch(() => undefined);
		await platform?.stop();
		fs.rmSync(home, { recursive: true, force: true });
	});

	it("answers offline, door, cabinet, alerts and open (confirmed over stdin) from a node on the mesh", async () => {
		const repl = new ReplProcess(namespace, home);
		repls.push(repl);
		const banner = await repl.until(PROMPT, "the first prompt");
		expect(banner).toMatch(new RegExp(`REPL as repl:\\S+@\\S+ \\(roles operator\\) on namespace "${namespace}"`));
		expect(banner).not.toContain("WARNING");

		const offline = await repl.run("offline");
		expect(offline).toMatch(new RegExp(`^${never.cabinetId}\\s.*\\s${never.pointId}\\s+\\S+\\s+never$`, "m"));
		expect(offline).not.toContain(online.cabinetId);
		expect(offline).toMatch(/page 1 of 1 \(1 offline\)$/);

		const door = formatDoorId(online.cabinetId, 2);
		expect(await repl.run(`door ${door}`)).toBe(`door ${door}  (no 2, size M) in cabinet ${online.cabinetId} at point ${online.pointId}\nstate available  open no  occupied no`);
		expect(await repl.run(`cabinet ${online.cabinetId}`)).toMatch(new RegExp(`^${formatDoorId(online.cabinetId, 1)}\\s+S\\s+available\\s+no\\s+no$`, "m"));
		expect(await repl.run("alerts")).toMatch(new RegExp(`^P2\\s+UnlockFailureRate\\s.*cabinetId=${online.cabinetId}.*unlocks failing on ${online.cabinetId}`, "m"));

		// The question comes through the REPL's own line reader: the answer is not taken as a command.
		const opening = formatDoorId(online.cabinetId, 1);
		repl.write(`open ${opening} --reason "bag stuck, customer on the phone"`);
		expect(await repl.until("[y/N] ", "the confirmation question")).toContain(`Open door ${opening} (available) now, reason "bag stuck, customer on the phone"?`);
		expect(await repl.run("n")).toBe("Not sent: the door stays closed.");
		expect(sim.counters.unlocks).toBe(0);
		repl.write(`open ${opening} --reason "bag stuck, customer on the phone"`);
		await repl.until("[y/N] ", "the confirmation question");
		expect(await repl.run("y")).toBe(`door ${opening} unlocked: the cabinet acknowledged; state available, occupied no (audited)`);
		expect(sim.counters.unlocks).toBe(1);
		const audit = await platform.broker.call<any, any>("merchants.listAudit", { targetId: opening });
		expect(audit.rows).toEqual([expect.objectContaining({ action: "door.open", actorId: expect.stringMatching(/^repl:\S+@\S+$/), actorRoles: ["operator"], reason: "bag stuck, customer on the phone" })]);

		expect(await repl.close()).toBe(0);
	});

	it("warns, naming the namespace and transporter, when no platform node is on its namespace", async () => {
		const wrong = `${namespace}-typo`;
		const repl = new ReplProcess(wrong, home);
		repls.push(repl);
		const warning = `WARNING: no platform node found on namespace "${wrong}" via transporter ${NATS}`;
		expect(await repl.until(PROMPT, "the first prompt")).toContain(warning);
		const answer = await repl.run("offline");
		expect(answer).toContain(warning);
		expect(answer).toContain("Check NAMESPACE and TRANSPORTER");
		expect(answer).not.toContain("page 1");
		expect(await repl.close()).toBe(0);
	});
});
