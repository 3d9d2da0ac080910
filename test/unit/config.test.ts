import { ConfigError, DEV_JWT_SECRET, loadConfig } from "../../config";

const prod = {
	NODE_ENV: "production", JWT_SECRET: "x".repeat(40), ADMIN_PASSWORD: "Str0ng-admin-pw", SANDBOX_PAY_SECRET: "sandbox-secret-prod",
	CABINET_SECRET_KEY: "k".repeat(40), MQTT_PASSWORD: "mqtt-platform-pw", MQTT_HOOK_SECRET: "hook-secret-prod",
};

function problems(env: Record<string, string>): string[] {
	try {
		loadConfig(env);
	} catch (err) {
		if (err instanceof ConfigError) return err.problems;
		throw err;
	}
	return [];
}

describe("configuration", () => {
	it("has safe development defaults: embedded, all services, port 3000", () => {
		const c = loadConfig({});
		expect(c).toMatchObject({ env: "development", port: 3000, mqttPort: 1883, transporter: undefined, heartbeatSec: 30, reservationTtlSec: 900, demoSeed: true });
		expect(c.services).toEqual(expect.arrayContaining(["api", "users"]));
		expect(c.auth.jwtSecret).toBe(DEV_JWT_SECRET);
	});

	it("accepts a valid production environment", () => {
		expect(problems(prod)).toEqual([]);
	});

	it("refuses to start in production with the default JWT secret or no admin password", () => {
		const { JWT_SECRET: _j, ADMIN_PASSWORD: _a, ...rest } = prod;
		const p = problems(rest);
		expect(p).toContain("JWT_SECRET must be set in production");
		expect(p).toContain("ADMIN_PASSWORD must be set in production");
		expect(problems({ ...prod, JWT_SECRET: "short" })).toContain("JWT_SECRET must be at least 32 characters in production");
		expect(problems({ ...prod, ADMIN_PASSWORD: "admin12345" })).toEqual([expect.stringMatching(/well-known default/)]);
		const { CABINET_SECRET_KEY: _k, MQTT_PASSWORD: _p, MQTT_HOOK_SECRET: _h, ...withoutDeviceSecrets } = prod;
		expect(problems(withoutDeviceSecrets)).toEqual([
			"CABINET_SECRET_KEY must be set in production", "MQTT_PASSWORD must be set in production", "MQTT_HOOK_SECRET must be set in production",
		]);
		expect(problems({ ...prod, CABINET_SECRET_KEY: "short" })).toEqual(["CABINET_SECRET_KEY must be at least 32 characters in production"]);
	});

	it("lists every bad variable at once", () => {
		const p = problems({ PORT: "http", HEARTBEAT_SEC: "0", TRANSPORTER: "amqp://x", SERVICES: "api,nope", DEMO_SEED: "maybe" });
		for (const name of ["PORT", "HEARTBEAT_SEC", "TRANSPORTER", "SERVICES", "DEMO_SEED"]) {
			expect(p.filter(x => x.startsWith(`${name} `))).not.toHaveLength(0);
		}
	});

	it("chooses a service subset only on a mesh", () => {
		expect(problems({ SERVICES: "users" })).toEqual([expect.stringMatching(/needs TRANSPORTER/)]);
		expect(loadConfig({ SERVICES: "users", TRANSPORTER: "nats://127.0.0.1:4222" }).services).toEqual(["users"]);
	});
});
