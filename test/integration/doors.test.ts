/**
 * Door actors and the cabinet link, embedded: the whole platform in this
 * process (aedes broker on a free port, door state in in-memory NeDB) and
 * simulated cabinets speaking PROTOCOL.md over real MQTT connections.
 */
import type { ServiceBroker } from "moleculer";
import mqtt from "mqtt";
import { SimulatedCabinet } from "../../tools/simulator/cabinet";
import { formatDoorId, parseCommand, signCommand, topicOf, type Command } from "../../domain/protocol";
import { startTestPlatform, type TestPlatform, until } from "../support/platform";
import { registerCabinet, type RegisteredCabinet } from "../support/catalog";
import { createGeoService } from "../../services/geo.service";

let p: TestPlatform;
let broker: ServiceBroker;
let mqttUrl: string;
const events: { name: string; payload: any }[] = [];
const cabinets: SimulatedCabinet[] = [];

beforeAll(async () => {
	p = await startTestPlatform({ HEARTBEAT_SEC: "1", DOOR_COMMAND_TIMEOUT_MS: "1500" });
	broker = p.node.broker;
	mqttUrl = (await broker.call<{ url: string }, object>("hardware.endpoint", {})).url;
	broker.createService({
		name: "door-event-recorder",
		events: {
			"doors.**"(ctx: any) {
				events.push({ name: ctx.eventName, payload: ctx.params });
			},
		},
	});
});
afterAll(async () => {
	await Promise.all(cabinets.map(c => c.stop().catch(() => undefined)));
	await p.stop();
}, 30_000);


async function onlineCabinet(doors: RegisteredCabinet["doors"], opts: Partial<ConstructorParameters<typeof SimulatedCabinet>[0]> = {}) {
	const reg = await registerCabinet(broker, doors);
	const sim = new SimulatedCabinet({ cabinetId: reg.cabinetId, secret: reg.secret, doors, mqttUrl, heartbeatSec: 1, ...opts });
	cabinets.push(sim);
	await sim.start();
	await until("the cabinet online", async () => (await broker.call<any, any>("doors.cabinet", { cabinetId: reg.cabinetId })).online);
	return { reg, sim };
}

const doorOf = (reg: RegisteredCabinet, no: number) => formatDoorId(reg.cabinetId, no);

describe("door actors with simulated cabinets", () => {
	it("runs a deposit and a pickup: reserve → open (acked) → closed on a bag → open → closed empty", async () => {
		const { reg, sim } = await onlineCabinet([{ no: 1, size: "S" }, { no: 2, size: "M" }]);
		const door = doorOf(reg, 2);
		const reserved = await broker.call<any, any>("doors.reserveAny", { cabinetId: reg.cabinetId, size: "M", orderId: "ord-1" });
		expect(reserved).toMatchObject({ id: door, state: "reserved", orderId: "ord-1" });
		const opened = await broker.call<any, any>("doors.open", { doorId: door, orderId: "ord-1", purpose: "deposit" });
		expect(opened.state).toBe("reserved");
		expect(sim.doors.get(2)!.open).toBe(true);
		expect([...sim.unlocksByCmd.values()]).toEqual([1]);
		sim.close(2, true);
		const deposited = await until("deposited", () => events.find(e => e.name === "doors.door.deposited" && e.payload.doorId === door));
		expect(deposited.payload.orderId).toBe("ord-1");
		expect(await broker.call<any, any>("doors.get", { doorId: door })).toMatchObject({ state: "occupied", open: false, occupied: true });
		await broker.call("doors.open", { doorId: door, orderId: "ord-1", purpose: "pickup" });
		sim.close(2, false);
		await until("picked up", () => events.find(e => e.name === "doors.door.pickedUp" && e.payload.doorId === door));
		expect(await broker.call<any, any>("doors.get", { doorId: door })).toMatchObject({ state: "available", orderId: null });
		expect(sim.counters.unlocks).toBe(2);
	});

	it("gives one door to exactly one of 1 000 concurrent orders; the rest get 409", async () => {
		const { reg } = await onlineCabinet([{ no: 1, size: "L" }]);
		const results = await Promise.allSettled(
			Array.from({ length: 1000 }, (_, i) => broker.call("doors.reserve", { doorId: doorOf(reg, 1), orderId: `race-${i}` })),
		);
		const won = results.filter(r => r.status === "fulfilled");
		const lost = results.filter((r): r is PromiseRejectedResult => r.status === "rejected");
		expect(won).toHaveLength(1);
		expect(lost).toHaveLength(999);
		expect(new Set(lost.map(r => `${r.reason.code} ${r.reason.type}`))).toEqual(new Set(["409 DOOR_NOT_AVAILABLE"]));
		const winner = (won[0] as PromiseFulfilledResult<any>).value;
		expect(await broker.call<any, any>("doors.get", { doorId: doorOf(reg, 1) })).toMatchObject({ state: "reserved", orderId: winner.orderId });
	});

	it("answers CABINET_OFFLINE at once for a cabinet whose last will arrived, and online again on its next message", async () => {
		const { reg, sim } = await onlineCabinet([{ no: 1, size: "S" }]);
		await broker.call("doors.reserve", { doorId: doorOf(reg, 1), orderId: "ord-off" });
		sim.crash();
		await until("offline event", () => events.find(e => e.name === "doors.cabinet.offline" && e.payload.cabinetId === reg.cabinetId));
		const started = Date.now();
		await expect(broker.call("doors.open", { doorId: doorOf(reg, 1), orderId: "ord-off", purpose: "deposit" })).rejects.toMatchObject({ code: 503, type: "CABINET_OFFLINE" });
		expect(Date.now() - started).toBeLessThan(1000);
		await sim.start();
		await until("online again", async () => (await broker.call<any, any>("doors.cabinet", { cabinetId: reg.cabinetId })).online);
	});

	it("marks a silent cabinet offline within 3 × HEARTBEAT_SEC", async () => {
		const { reg, sim } = await onlineCabinet([{ no: 1, size: "S" }]);
		const mutedAt = Date.now();
		sim.mute();
		await until("offline by silence", () => events.find(e => e.name === "doors.cabinet.offline" && e.payload.cabinetId === reg.cabinetId && e.payload.reason === "silence"), 6000);
		expect(Date.now() - mutedAt).toBeLessThan(3 * 1000 + 1500); // 3 × 1 s, plus the 1 s tick
	});

	it("times out an unacked open as DOOR_TIMEOUT (unknown), and settles it from the cabinet's report without a second unlock", async () => {
		const { reg, sim } = await onlineCabinet([{ no: 1, size: "S" }], { latencyMs: [2500, 2500] });
		const door = doorOf(reg, 1);
		await broker.call("doors.reserve", { doorId: door, orderId: "ord-slow" });
		await expect(broker.call("doors.open", { doorId: door, orderId: "ord-slow", purpose: "deposit" })).rejects.toMatchObject({ code: 504, type: "DOOR_TIMEOUT" });
		expect(events.some(e => e.name === "doors.anomaly" && e.payload.doorId === door && e.payload.kind === "command_unknown")).toBe(true);
		// The cabinet executes late (its notAfter had not passed when it received it) and reports the door open.
		await until("the late opening", async () => (await broker.call<any, any>("doors.get", { doorId: door })).open);
		expect([...sim.unlocksByCmd.values()]).toEqual([1]);
	});

	it("does not settle an open with an ack naming another door: counts it malformed and waits for the door's own ack", async () => {
		const reg = await registerCabinet(broker, [{ no: 1, size: "S" }, { no: 2, size: "S" }]);
		const topic = (kind: "status" | "state" | "ack" | "cmd") => topicOf(reg.cabinetId, kind);
		// A cabinet driven by hand, so the test decides which ack goes out when.
		const cab = mqtt.connect(mqttUrl, { clientId: reg.cabinetId, username: reg.cabinetId, password: reg.secret, reconnectPeriod: 0 });
		try {
			await new Promise(r => cab.once("connect", r));
			const openCmd = new Promise<Command>(resolve => cab.on("message", (_t, payload) => {
				const c = parseCommand(payload);
				if (c.ok && c.value.action === "open") resolve(c.value);
			}));
			await cab.subscribeAsync(topic("cmd"), { qos: 1 });
			await cab.publishAsync(topic("status"), JSON.stringify({ online: true, boot: "b-hand", doors: 2 }), { qos: 1 });
			const doors = [1, 2].map(no => ({ no, open: false, occupied: false }));
			await cab.publishAsync(topic("state"), JSON.stringify({ ts: Date.now(), seq: 1, boot: "b-hand", doors }), { qos: 1 });
			await until("the cabinet online", async () => (await broker.call<any, any>("doors.cabinet", { cabinetId: reg.cabinetId })).online);
			await broker.call("doors.reserve", { doorId: doorOf(reg, 1), orderId: "ord-wrong-door" });
			const malformedAcks = async () => (await broker.call<any, object>("hardware.stats", {})).messages["ack.malformed"] ?? 0;
			const before = await malformedAcks();

			let settled = false;
			const opening = broker.call<any, object>("doors.open", { doorId: doorOf(reg, 1), orderId: "ord-wrong-door", purpose: "deposit" });
			opening.then(() => (settled = true), () => (settled = true));
			const cmd = await openCmd;
			// The command's cmdId, but door 2 and a failure: taken as the answer, it would fail the open (DOOR_FAULT).
			await cab.publishAsync(topic("ack"), JSON.stringify({ cmdId: cmd.cmdId, ok: false, error: "JAMMED", door: 2, ts: Date.now() }), { qos: 1 });
			// Nor does one naming no door (an ack carries its command's door).
			await cab.publishAsync(topic("ack"), JSON.stringify({ cmdId: cmd.cmdId, ok: false, error: "HARDWARE_FAULT", ts: Date.now() }), { qos: 1 });
			await until("both acks counted as malformed", async () => (await malformedAcks()) - before === 2, 1500); // within the command's deadline
			expect(settled).toBe(false);
			await cab.publishAsync(topic("ack"), JSON.stringify({ cmdId: cmd.cmdId, ok: true, door: 1, ts: Date.now() }), { qos: 1 });
			await expect(opening).resolves.toMatchObject({ id: doorOf(reg, 1), state: "reserved", orderId: "ord-wrong-door" });
			expect(await broker.call<any, any>("doors.get", { doorId: doorOf(reg, 2) })).toMatchObject({ state: "available" });
		} finally {
			cab.end(true);
		}
	});

	it("refuses a wrong password, another cabinet's cmd topic, and a publish to another cabinet's topics", async () => {
		const { reg: a } = await onlineCabinet([{ no: 1, size: "S" }]);
		const { reg: b, sim: simB } = await onlineCabinet([{ no: 1, size: "S" }]);
		const wrong = mqtt.connect(mqttUrl, { clientId: a.cabinetId, username: a.cabinetId, password: "not-the-secret", reconnectPeriod: 0 });
		const err = await new Promise<Error>(resolve => wrong.once("error", resolve));
		expect(err.message).toMatch(/Bad username or password|Not authorized/i);
		wrong.end(true);

		expect(await simB.trySubscribe(topicOf(a.cabinetId, "cmd"))).toEqual([128]);
		expect(await simB.trySubscribe("lockers/#")).toEqual([128]);

		// B forges a command into A's cmd topic and a state into A's state topic: B is cut off, A never sees them.
		const seenByA: string[] = [];
		const spy = mqtt.connect(mqttUrl, { username: "platform", password: p.config.mqtt.password, clientId: `spy-${Date.now()}` });
		await new Promise(r => spy.once("connect", r));
		await spy.subscribeAsync(`lockers/${a.cabinetId}/#`);
		spy.on("message", topic => seenByA.push(topic));
		const forged = signCommand(b.secret, { cmdId: "FORGED", action: "open", door: 1, epoch: 999, ts: Date.now(), notAfter: Date.now() + 10_000 });
		const closed = new Promise(r => (simB as any).client.once("close", r));
		void simB.raw(topicOf(a.cabinetId, "cmd"), JSON.stringify(forged)).catch(() => undefined);
		await closed;
		simB.crash(); // its client would re-send the refused publish on every reconnect
		expect(seenByA.filter(t => t.endsWith("/cmd"))).toEqual([]);
		spy.end(true);
	});

	it("feeds door availability to nearby search: a reserved door is not free, a released one is again", async () => {
		const { reg } = await onlineCabinet([{ no: 1, size: "M" }, { no: 2, size: "M" }, { no: 3, size: "L" }]);
		const availableAt = async () => {
			// geo.nearby answers its JSON already encoded (the gateway sends it as it is).
			const { rows } = JSON.parse(await broker.call<string, any>("geo.nearby", { lat: reg.lat, lng: reg.lng, radius: 100 }));
			return rows.find((r: any) => r.id === reg.pointId)?.available;
		};
		await until("the point in the index", async () => (await availableAt())?.M === 2);
		await broker.call("doors.reserve", { doorId: doorOf(reg, 1), orderId: "ord-geo" });
		await until("M down to 1", async () => (await availableAt())?.M === 1);
		expect(await availableAt()).toEqual({ S: 0, M: 1, L: 1 });
		await broker.call("doors.release", { doorId: doorOf(reg, 1), orderId: "ord-geo" });
		await until("M back to 2", async () => (await availableAt())?.M === 2);
		// Asked (and cached) with a size filter: the point leaves when its only L door is taken, and comes back.
		const withL = async () => {
			const { rows } = JSON.parse(await broker.call<string, any>("geo.nearby", { lat: reg.lat, lng: reg.lng, radius: 100, size: "L" }));
			return rows.some((r: any) => r.id === reg.pointId);
		};
		expect(await withL()).toBe(true);
		await broker.call("doors.reserve", { doorId: doorOf(reg, 3), orderId: "ord-geo-l" });
		await until("gone from size=L", async () => !(await withL()));
		expect(await availableAt()).toEqual({ S: 0, M: 2, L: 0 }); // and the unfiltered set (still cached) shows it
		await broker.call("doors.release", { doorId: doorOf(reg, 3), orderId: "ord-geo-l" });
		await until("back in size=L", async () => await withL());
	});

	it("a geo replica that starts later loads the doors taken now (not only later changes)", async () => {
		const { reg } = await onlineCabinet([{ no: 1, size: "M" }, { no: 2, size: "M" }]);
		await broker.call("doors.reserve", { doorId: doorOf(reg, 2), orderId: "ord-restart" });
		await broker.destroyService(broker.getLocalService("geo")!);
		broker.createService(createGeoService(p.config));
		await broker.waitForServices(["geo"]);
		const available = await until("the new replica's index", async () => {
			const r = await broker.call<string, any>("geo.nearby", { lat: reg.lat, lng: reg.lng, radius: 100 }).then(JSON.parse, () => undefined);
			return r?.rows.find((row: any) => row.id === reg.pointId)?.available;
		});
		expect(available).toEqual({ S: 0, M: 1, L: 0 });
	});

	it("drops and counts malformed payloads and keeps serving", async () => {
		const { reg, sim } = await onlineCabinet([{ no: 1, size: "S" }]);
		const before = (await broker.call<any, object>("hardware.stats", {})).messages;
		for (const junk of ["{", "[]", '{"ts":"x"}', Buffer.from([0xff, 0x00])]) await sim.raw(topicOf(reg.cabinetId, "state"), junk);
		await until("malformed counted", async () => ((await broker.call<any, object>("hardware.stats", {})).messages["state.malformed"] ?? 0) - (before["state.malformed"] ?? 0) >= 4);
		expect(await broker.call<any, any>("doors.reserve", { doorId: doorOf(reg, 1), orderId: "ord-ok" })).toMatchObject({ state: "reserved" });
	});
});
