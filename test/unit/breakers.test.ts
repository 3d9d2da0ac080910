/**
 * Circuit breakers count failures of the mesh and of a service, never a
 * domain answer about one cabinet or door, and never the failure of a call
 * that a healthy action merely relays (ARCHITECTURE.md "Failure isolation").
 */
import { Errors, ServiceBroker } from "moleculer";
import { loadConfig } from "../../config";
import { createBrokerOptions } from "../../moleculer.config";
import { isMeshFailure } from "../../lib/mesh-errors";

describe("which failures a breaker counts", () => {
	it("counts no-answer errors and crashes, not domain answers or caller mistakes", () => {
		expect(isMeshFailure(new Errors.RequestTimeoutError({ action: "doors.open", nodeID: "n1" }))).toBe(true);
		expect(isMeshFailure(new Errors.ServiceNotAvailableError({ action: "doors.open", nodeID: "n1" }))).toBe(true);
		expect(isMeshFailure(new TypeError("x is undefined"))).toBe(true);
		for (const type of ["CABINET_OFFLINE", "NOT_OWNER", "DOOR_TIMEOUT", "STORE_UNAVAILABLE", "DOOR_FAULT"]) {
			expect(isMeshFailure(new Errors.MoleculerRetryableError("domain", 503, type))).toBe(false);
		}
		expect(isMeshFailure(new Errors.MoleculerClientError("no", 409, "DOOR_NOT_AVAILABLE"))).toBe(false);
		expect(isMeshFailure(new Errors.ValidationError("bad", "VALIDATION_ERROR", []))).toBe(false);
	});
});

describe("breakers of a broker with the platform's options", () => {
	let broker: ServiceBroker;
	beforeAll(async () => {
		const config = loadConfig({ NODE_ENV: "test", LOG_LEVEL: "fatal", METRICS: "false" });
		broker = new ServiceBroker(createBrokerOptions(config, { logger: false, nodeID: "breakers" }));
		broker.createService({
			name: "front",
			actions: {
				// A healthy action whose nested call finds no endpoint (the doors nodes are gone).
				relay: (ctx: any) => ctx.call("back.missing"),
				offline: () => Promise.reject(new Errors.MoleculerRetryableError("Cabinet c1 is offline", 503, "CABINET_OFFLINE")),
				crash: () => Promise.reject(new TypeError("cannot read x of undefined")),
			},
		});
		await broker.start();
	});
	afterAll(() => broker.stop());

	async function typesOf(action: string, times: number): Promise<string[]> {
		const types: string[] = [];
		for (let i = 0; i < times; i++) types.push(await broker.call(action).then(() => "ok", (err: any) => err.type ?? err.name));
		return types;
	}

	it("a relayed no-answer never opens the relaying action's breaker", async () => {
		expect(new Set(await typesOf("front.relay", 30))).toEqual(new Set(["SERVICE_NOT_FOUND"]));
	});

	it("a domain 503 about one cabinet never opens the breaker", async () => {
		expect(new Set(await typesOf("front.offline", 30))).toEqual(new Set(["CABINET_OFFLINE"]));
	});

	it("a crashing action does open it (the breaker still works)", async () => {
		const types = await typesOf("front.crash", 30);
		expect(types).toContain("SERVICE_NOT_AVAILABLE");
	});
});
