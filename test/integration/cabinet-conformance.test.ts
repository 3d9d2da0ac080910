/**
 * PROTOCOL.md from the cabinet's side (the simulator every test and benchmark
 * relies on) and the broker hooks EMQX calls: commands are sent by hand with
 * the platform's MQTT account through the embedded broker.
 */
import mqtt, { type MqttClient } from "mqtt";
import { newCmdId, parseAck, signCommand, topicOf, type Ack, type UnsignedCommand } from "../../domain/protocol";
import { SimulatedCabinet } from "../../tools/simulator/cabinet";
import { registerCabinet } from "../support/catalog";
import { startTestPlatform, type TestPlatform } from "../support/platform";

let p: TestPlatform;
let platform: MqttClient;
let sim: SimulatedCabinet;
let secret: string;
let cabinetId: string;
const acks: Ack[] = [];

beforeAll(async () => {
	p = await startTestPlatform();
	const url = (await p.node.broker.call<{ url: string }, object>("hardware.endpoint", {})).url;
	const reg = await registerCabinet(p.node.broker, [{ no: 1, size: "S" }, { no: 2, size: "M" }]);
	({ cabinetId, secret } = reg);
	sim = new SimulatedCabinet({ cabinetId, secret, doors: reg.doors, mqttUrl: url });
	await sim.start();
	platform = mqtt.connect(url, { clientId: `conformance-${process.pid}`, username: p.config.mqtt.username, password: p.config.mqtt.password });
	await new Promise(r => platform.once("connect", r));
	await platform.subscribeAsync(topicOf(cabinetId, "ack"), { qos: 1 });
	platform.on("message", (_t, payload) => {
		const a = parseAck(payload);
		if (a.ok) acks.push(a.value);
	});
});
afterAll(async () => {
	await sim.stop();
	await platform.endAsync();
	await p.stop();
});

async function send(cmd: UnsignedCommand, key = secret): Promise<void> {
	await platform.publishAsync(topicOf(cabinetId, "cmd"), JSON.stringify(signCommand(key, cmd)), { qos: 1 });
}

async function ackOf(cmdId: string, count = 1): Promise<Ack[]> {
	for (let i = 0; i < 200; i++) {
		const mine = acks.filter(a => a.cmdId === cmdId);
		if (mine.length >= count) return mine;
		await new Promise(r => setTimeout(r, 10));
	}
	throw new Error(`no ack for ${cmdId}`);
}

/** Above every epoch the platform's own owner of this cabinet hands out (they start at the clock in ms). */
const E = 1e14;
const cmd = (over: Partial<UnsignedCommand> = {}): UnsignedCommand => {
	const now = Date.now();
	return { cmdId: newCmdId(now), action: "open", door: 1, epoch: E + 10, ts: now, notAfter: now + 5000, ...over };
};

describe("cabinet side of PROTOCOL.md (simulator)", () => {
	it("executes a signed open once and acks it; a repeat of the cmdId gets the original ack again and no second unlock", async () => {
		const c = cmd();
		await send(c);
		const [first] = await ackOf(c.cmdId);
		expect(first).toMatchObject({ cmdId: c.cmdId, ok: true, door: 1 });
		await send(c);
		const both = await ackOf(c.cmdId, 2);
		expect(both[1]).toEqual(first); // the original ack, same ts
		expect(sim.unlocksByCmd.get(c.cmdId)).toBe(1);
	});

	it("drops a command with a bad signature silently", async () => {
		const before = sim.counters.badSignature;
		const c = cmd();
		await send(c, "not-the-secret");
		const probe = cmd({ door: 2 }); // a good one after it: once acked, the bad one was handled
		await send(probe);
		await ackOf(probe.cmdId);
		expect(acks.some(a => a.cmdId === c.cmdId)).toBe(false);
		expect(sim.counters.badSignature).toBe(before + 1);
		expect(sim.unlocksByCmd.has(c.cmdId)).toBe(false);
	});

	it("rejects a stale epoch and an expired command without unlocking", async () => {
		await send(cmd({ epoch: E + 20 }));
		const stale = cmd({ epoch: E + 19 });
		await send(stale);
		expect((await ackOf(stale.cmdId))[0]).toMatchObject({ ok: false, error: "STALE_EPOCH" });
		const expired = cmd({ epoch: E + 20, notAfter: Date.now() - 1 });
		await send(expired);
		expect((await ackOf(expired.cmdId))[0]).toMatchObject({ ok: false, error: "EXPIRED" });
		expect(sim.unlocksByCmd.has(stale.cmdId) || sim.unlocksByCmd.has(expired.cmdId)).toBe(false);
	});

	it("answers NO_SUCH_DOOR for a door it does not have, and a query with a full state", async () => {
		const none = cmd({ epoch: E + 20, door: 9 });
		await send(none);
		expect((await ackOf(none.cmdId))[0]).toMatchObject({ ok: false, error: "NO_SUCH_DOOR" });
		const q = cmd({ epoch: E + 20, action: "query", door: undefined });
		await send(q);
		expect((await ackOf(q.cmdId))[0]).toMatchObject({ ok: true });
	});
});

describe("EMQX hooks through the gateway", () => {
	const hook = (path: string, body: unknown, secretHeader?: string) =>
		p.api("POST", `/api/v1/internal/mqtt/${path}`, body, secretHeader === undefined ? {} : { headers: { "x-hook-secret": secretHeader } });

	it("refuses callers without the hook secret", async () => {
		expect((await hook("auth", { clientid: cabinetId, username: cabinetId, password: secret })).status).toBe(401);
		expect((await hook("auth", { clientid: cabinetId, username: cabinetId, password: secret }, "wrong")).status).toBe(401);
	});

	it("authenticates cabinets by their secret and the platform as superuser", async () => {
		const s = p.config.mqtt.hookSecret;
		expect((await hook("auth", { clientid: cabinetId, username: cabinetId, password: secret }, s)).body).toEqual({ result: "allow", is_superuser: false });
		expect((await hook("auth", { clientid: cabinetId, username: cabinetId, password: "nope" }, s)).body).toEqual({ result: "deny", is_superuser: false });
		expect((await hook("auth", { clientid: "other", username: cabinetId, password: secret }, s)).body).toEqual({ result: "deny", is_superuser: false });
		expect((await hook("auth", { clientid: "bridge", username: p.config.mqtt.username, password: p.config.mqtt.password }, s)).body).toEqual({ result: "allow", is_superuser: true });
	});

	it("authorizes exactly PROTOCOL.md's topics", async () => {
		const s = p.config.mqtt.hookSecret;
		const acl = async (topic: string, action: string) => (await hook("acl", { clientid: cabinetId, username: cabinetId, topic, action }, s)).body.result;
		expect(await acl(`lockers/${cabinetId}/state`, "publish")).toBe("allow");
		expect(await acl(`lockers/${cabinetId}/cmd`, "subscribe")).toBe("allow");
		expect(await acl(`lockers/${cabinetId}/cmd`, "publish")).toBe("deny");
		expect(await acl("lockers/cab_other/state", "publish")).toBe("deny");
		expect(await acl("lockers/cab_other/cmd", "subscribe")).toBe("deny");
		expect(await acl("lockers/#", "subscribe")).toBe("deny");
	});
});
