// Three suites: unit (pure logic), integration (whole platform in-process or as
// child processes, no outside servers) and e2e (the real NATS, Redis and
// Mosquitto of the machine). `npm test` runs the first two.
const transform = {
	"^.+\\.ts$": ["@swc/jest", { jsc: { parser: { syntax: "typescript" }, target: "es2022" }, module: { type: "commonjs" } }],
};
const common = { transform, testEnvironment: "node", moduleFileExtensions: ["ts", "js", "json"] };

module.exports = {
	projects: [
		{ ...common, displayName: "unit", testMatch: ["<rootDir>/test/unit/**/*.test.ts"] },
		{ ...common, displayName: "integration", testMatch: ["<rootDir>/test/integration/**/*.test.ts"] },
		{ ...common, displayName: "e2e", testMatch: ["<rootDir>/test/e2e/**/*.test.ts"] },
	],
};
