/**
 * A circuit breaker opening on one node reaches the DingTalk group through the
 * alerts service on another, over the real NATS server of this machine: a
 * node's calls to a service that stopped answering trip its breaker
 * (Moleculer raises `$circuit-breaker.opened` on that node's local bus only),
 * the node forwards it to the mesh, the alerts node turns it into a
 * `CircuitBreakerOpen` alert and sends it, signed, to the fake robot; when the
 * breaker closes again the resolved message follows.
 */
import { Errors } from "moleculer";
import { loadConfig } from "../../config";
import { startNode, type StartedNode } from "../../server";
import { FakeDingTalk } from "../support/fake-dingtalk";
import { until } from "../support/platform";

jest.setTimeout(60_000);

const NATS = process.env.NATS_URL ?? "nats://127.0.0.1:4222";
const SECRET = "SECmesh0123456789abcdef0123456789abcdef0123456789abcdef01234567";

describe("a breaker on one node, the alert from another, over real NATS", () => {
	const fake = new FakeDingTalk();
	const namespace = `e2e-alerts-${process.pid}`;
	let alertsNode: StartedNode;
	let callerNode: StartedNode;
	let answering = false;

	beforeAll(async () => {
		await fake.start();
		fake.addRobot({ token: "t-mesh", secret: SECRET });
		const common = { NODE_ENV: "test", TRANSPORTER: NATS, NAMESPACE: namespace, LOG_LEVEL: "error", METRICS: "false", DEMO_SEED: "false", REQUEST_TIMEOUT_MS: "300" };
		alertsNode = await startNode(
			loadConfig({
				...common, NODE_ID: `alerts-${process.pid}`, SERVICES: "alerts", ALERTS_TICK_MS: "100", ALERT_CLEAR_FOR_MS: "100",
				ALERTS_TIMING: JSON.stringify({ P2: { groupWaitMs: 200, groupIntervalMs: 300 } }),
				DINGTALK_ROBOTS: JSON.stringify([{ name: "mesh", url: fake.url("t-mesh"), secret: SECRET }]),
			}),
			{ dataDir: null },
		);
		// A service on the alerts node that stops answering (a hung dependency) and comes back.
		alertsNode.broker.createService({
			name: "flaky",
			actions: {
				async ping() {
					if (answering) return "pong";
					await new Promise(r => setTimeout(r, 1000));
					throw new Errors.MoleculerError("too late", 500);
				},
			},
		});
		callerNode = await startNode(loadConfig({ ...common, NODE_ID: `caller-${process.pid}`, SERVICES: "users" }), { dataDir: null });
		await callerNode.broker.waitForServices(["flaky", "alerts"], 10_000);
	});

	afterAll(async () => {
		await callerNode?.stop();
		await alertsNode?.stop();
		await fake.stop();
	});

	it("sends CircuitBreakerOpen for the caller's node, and its resolution once calls succeed again", async () => {
		const calls = Array.from({ length: 8 }, () => callerNode.broker.call("flaky.ping").catch((e: Error) => e));
		const results = await Promise.all(calls);
		expect(results.every(r => r instanceof Error)).toBe(true);
		const firing = await fake.until("the breaker alert", () => fake.messages.find(m => m.text.includes(`node=caller-${process.pid}`)));
		expect(firing.title).toBe("[P2] CircuitBreakerOpen");
		expect(firing.text).toContain(`node=caller-${process.pid}`);
		expect(firing.text).toContain("action=flaky.ping");
		expect(firing.text).toContain(`target=alerts-${process.pid}`);

		// The service answers again; after the half-open time a call goes through and closes the breaker.
		answering = true;
		await until("the breaker closed", async () => {
			await callerNode.broker.call("flaky.ping").catch(() => undefined);
			return fake.messages.find(m => m.title.includes("CircuitBreakerOpen") && m.text.includes("RESOLVED"));
		}, 20_000);
		// The caller's breaker: one firing message, one resolved. (The failing action's own node counts its
		// failures too and may report its breaker as well, under its own node label.)
		const callers = fake.messages.filter(m => m.text.includes(`node=caller-${process.pid}`));
		expect(callers.map(m => m.text.includes("RESOLVED"))).toEqual([false, true]);
		expect(fake.requests.every(r => r.errcode === 0)).toBe(true);
	});
});
