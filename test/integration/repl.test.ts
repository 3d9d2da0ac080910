/**
 * The operator REPL's commands against the whole platform in this process
 * (as `npm start -- --repl` runs them), with a simulated cabinet for `open`:
 * the text each command prints, the confirmation, the audit entry the REPL
 * leaves, and the warning when no platform node is known.
 */
import os from "node:os";
import { ServiceBroker } from "moleculer";
import { SimulatedCabinet } from "../../tools/simulator/cabinet";
import { formatDoorId } from "../../domain/protocol";
import { replUser, runCommand, type ReplSession } from "../../lib/repl/commands";
import { registerCabinet, type RegisteredCabinet } from "../support/catalog";
import { ADMIN, newPhone, startTestPlatform, until, type TestPlatform } from "../support/platform";

jest.setTimeout(60_000);

let p: TestPlatform;
let online: RegisteredCabinet;
let never: RegisteredCabinet;
let sim: SimulatedCabinet;
const printed: string[] = [];
const questions: string[] = [];
const answers: boolean[] = [];
let session: ReplSession;

/** Runs one command line (already split into tokens) and returns what it printed. */
async function repl(line: string[]): Promise<string> {
	printed.length = 0;
	await runCommand(session, line[0], line.slice(1));
	return printed.join("\n");
}

beforeAll(async () => {
	p = await startTestPlatform({ HEARTBEAT_SEC: "1", DOOR_COMMAND_TIMEOUT_MS: "1500", ALERTS_TICK_MS: "100" });
	const broker = p.node.broker;
	session = {
		broker, user: replUser(), namespace: p.config.namespace, transporter: null,
		io: {
			print: t => printed.push(t),
			confirm: async q => {
				questions.push(q);
				return answers.shift() ?? false;
			},
		},
	};
	const mqttUrl = (await broker.call<{ url: string }, object>("hardware.endpoint", {})).url;
	online = await registerCabinet(broker, [{ no: 1, size: "S" }, { no: 2, size: "M" }]);
	never = await registerCabinet(broker, [{ no: 1, size: "L" }], online);
	sim = new SimulatedCabinet({ cabinetId: online.cabinetId, secret: online.secret, doors: online.doors, mqttUrl, heartbeatSec: 1 });
	await sim.start();
	await until("the cabinet online", async () => (await broker.call<any, any>("doors.cabinet", { cabinetId: online.cabinetId })).online);
});
afterAll(async () => {
	await sim?.stop().catch(() => undefined);
	await p?.stop();
}, 30_000);

describe("REPL commands on the embedded platform", () => {
	it("identifies itself as an operator from the REPL", () => {
		expect(session.user).toEqual({ id: `repl:${os.userInfo().username}@${os.hostname()}`, roles: ["operator"], sid: "repl" });
	});

	it("door: the live state of a door", async () => {
		const door = formatDoorId(online.cabinetId, 2);
		expect(await repl(["door", door])).toBe(`door ${door}  (no 2, size M) in cabinet ${online.cabinetId} at point ${online.pointId}\nstate available  open no  occupied no`);
		expect(await repl(["door", `${online.cabinetId}:9`])).toBe("error 404 NOT_FOUND: Door not found");
		expect(await repl(["door"])).toBe("missing <doorId>\nusage: door <doorId>");
	});

	it("cabinet: its doors as a table", async () => {
		const lines = (await repl(["cabinet", online.cabinetId])).split("\n");
		expect(lines[0]).toBe(`cabinet ${online.cabinetId} at point ${online.pointId} (merchant ${(await p.node.broker.call<any, any>("merchants.getCabinet", { id: online.cabinetId })).merchantId})`);
		expect(lines[1]).toMatch(/^online yes {2}last seen \d{4}-/);
		expect(lines[2]).toMatch(/^door\s+size\s+state\s+open\s+occupied\s+order$/);
		expect(lines.slice(4)).toEqual([
			expect.stringMatching(new RegExp(`^${formatDoorId(online.cabinetId, 1)}\\s+S\\s+available\\s+no\\s+no$`)),
			expect.stringMatching(new RegExp(`^${formatDoorId(online.cabinetId, 2)}\\s+M\\s+available\\s+no\\s+no$`)),
		]);
	});

	it("offline: the cabinet that never connected, not the online one, paged", async () => {
		const text = await repl(["offline", "--pageSize", "100"]);
		expect(text).toMatch(new RegExp(`^${never.cabinetId}\\s+\\S+\\s+\\S+\\s+${never.pointId}\\s+\\S+\\s+never$`, "m"));
		expect(text).not.toContain(online.cabinetId);
		expect(text).toMatch(/page 1 of 1 \(\d+ offline\)$/);
		expect(await repl(["offline", "--page", "x"])).toBe('--page must be a whole number ≥ 1, not "x"\nusage: offline [--page N] [--pageSize N]');
	});

	it("open: asks, sends nothing on no; opens on yes, audited as the REPL with the reason", async () => {
		const door = formatDoorId(online.cabinetId, 1);
		expect(await repl(["open", door])).toBe('open needs --reason "<why>" (3 to 200 characters): it goes to the audit log');

		answers.push(false);
		expect(await repl(["open", door, "--reason", "customer locked out"])).toBe("Not sent: the door stays closed.");
		expect(questions.pop()).toBe(`Open door ${door} (available) now, reason "customer locked out"? [y/N] `);
		expect(sim.counters.unlocks).toBe(0);

		answers.push(true);
		expect(await repl(["open", door, "--reason", "customer locked out"])).toBe(`door ${door} unlocked: the cabinet acknowledged; state available, occupied no (audited)`);
		expect(sim.doors.get(1)!.open).toBe(true);
		expect(sim.counters.unlocks).toBe(1);

		const audit = await p.node.broker.call<any, any>("merchants.listAudit", { targetId: door });
		expect(audit.rows).toHaveLength(1); // the refused confirmation left no entry: nothing was sent
		expect(audit.rows[0]).toMatchObject({ action: "door.open", actorId: session.user.id, actorRoles: ["operator"], reason: "customer locked out", requestId: expect.stringMatching(/^repl-/), outcome: "opened" });
		sim.close(1, false);
	});

	it("open: says why a door did not open", async () => {
		const door = formatDoorId(never.cabinetId, 1);
		questions.length = 0;
		expect(await repl(["open", door, "--reason", "check the lock", "--yes"])).toMatch(/^error 503 CABINET_OFFLINE: /);
		expect(questions).toEqual([]);
		const audit = await p.node.broker.call<any, any>("merchants.listAudit", { targetId: door });
		expect(audit.rows).toEqual([expect.objectContaining({ action: "door.open", actorId: session.user.id, reason: "check the lock", outcome: "CABINET_OFFLINE" })]);
	});

	it("order: an order's status, door and amount", async () => {
		const token = (await p.api("POST", "/api/v1/auth/register", { phone: newPhone(), password: "repl-pass-123" })).body.accessToken;
		const order = (await p.api("POST", "/api/v1/orders", { pointId: online.pointId, size: "M" }, { token })).body;
		const text = await repl(["order", order.id]);
		expect(text).toMatch(new RegExp(`^order\\s+${order.id}$`, "m"));
		expect(text).toMatch(/^status\s+reserved$/m);
		expect(text).toMatch(new RegExp(`^door\\s+${order.doorId} \\(size M\\)$`, "m"));
		expect(text).toMatch(/^amount\s+-$/m);
		expect(await repl(["order", "ord_000000000nope"])).toBe("error 404 NOT_FOUND: Order not found");
	});

	it("alerts and silence: firing alerts, a silence created, listed, shown on the alert, ended", async () => {
		const broker = p.node.broker;
		expect(await repl(["alerts", "--state", "pending"])).toBe("No pending alert.");
		await broker.call("alerts.signal", { rule: "UnlockFailureRate", labels: { cabinetId: "cab_repl_1" }, active: true, summary: "unlocks failing on cab_repl_1" });
		await until("the alert firing", async () => (await broker.call<any, any>("alerts.list", { state: "firing" })).rows.find((a: any) => a.labels.cabinetId === "cab_repl_1"));
		expect(await repl(["alerts"])).toMatch(/^P2\s+UnlockFailureRate\s+\d{4}-\S+\s+(alertname=UnlockFailureRate )?cabinetId=cab_repl_1.*unlocks failing on cab_repl_1$/m);

		expect(await repl(["silence", "--label", "cabinetId=cab_repl_1", "--for", "2h"])).toBe('a silence needs --comment "<why>"');
		expect(await repl(["silence", "--label", "cabinetId", "--for", "2h", "--comment", "x"])).toBe('--label wants name=value or name=~regex, not "cabinetId"');
		expect(await repl(["silence", "--label", "cabinetId=cab_repl_1", "--for", "2y", "--comment", "x"])).toMatch(/^--for: "2y" is not a duration/);

		const before = Date.now();
		const created = await repl(["silence", "--label", "cabinetId=cab_repl_1", "--for", "2h", "--comment", "lock replaced"]);
		const id = /^silence (sil_\S+) created: cabinetId=cab_repl_1 until (\S+) \(by (\S+)\)/.exec(created);
		expect(id).not.toBeNull();
		expect(id![3]).toBe(session.user.id);
		expect(Date.parse(id![2]) - before).toBeGreaterThanOrEqual(2 * 3600_000 - 1000);

		expect(await repl(["silence"])).toMatch(new RegExp(`^${id![1]}\\s+cabinetId=cab_repl_1\\s+\\S+\\s+\\S+\\s+${session.user.id}\\s+lock replaced$`, "m"));
		expect(await repl(["alerts"])).toMatch(new RegExp(`cab_repl_1.*silenced ${id![1]}$`, "m"));
		// The same list over REST (GET /alerts/silences, staff only).
		const admin = (await p.api("POST", "/api/v1/auth/login", { login: ADMIN.username, password: ADMIN.password })).body.accessToken;
		expect((await p.api("GET", "/api/v1/alerts/silences", undefined, { token: admin })).body).toMatchObject({ rows: [{ id: id![1], comment: "lock replaced" }], total: 1, page: 1 });
		expect((await p.api("GET", "/api/v1/alerts/silences")).status).toBe(401);

		expect(await repl(["silence", "end", id![1]])).toMatch(new RegExp(`^silence ${id![1]} ended at \\d{4}-`));
		expect(await repl(["silence"])).not.toContain(id![1]);
		expect(await repl(["silence", "end", "sil_000000000nope"])).toBe("error 404 NOT_FOUND: Silence not found");
	});
});

describe("no platform node", () => {
	it("warns with the namespace and transporter instead of printing an empty answer", async () => {
		const bare = new ServiceBroker({ namespace: "lockers-typo", nodeID: "repl-bare", logger: false });
		await bare.start();
		try {
			printed.length = 0;
			await runCommand({ ...session, broker: bare, namespace: "lockers-typo" }, "offline", []);
			expect(printed.join("\n")).toBe(
				'WARNING: no platform node found on namespace "lockers-typo" via no transporter (embedded); it knows no other node.\n' +
				"  Check NAMESPACE and TRANSPORTER (they must match the platform's nodes); nothing was asked.",
			);
		} finally {
			await bare.stop();
		}
	});
});
