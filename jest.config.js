// Four suites: unit (pure logic), integration (whole platform in-process or as
// child processes, no outside servers), e2e (the real NATS, Redis and
// Mosquitto of the machine) and browser (chromium). `npm test` runs the first two.
// ts-jest only transpiles (isolatedModules in tsconfig.json); `npm run typecheck` is the type check.
const transform = { "^.+\\.ts$": ["ts-jest", { diagnostics: false }] };
const common = { transform, testEnvironment: "node", moduleFileExtensions: ["ts", "js", "json"] };

module.exports = {
	projects: [
		{ ...common, displayName: "unit", testMatch: ["<rootDir>/test/unit/**/*.test.ts"] },
		{ ...common, displayName: "integration", testMatch: ["<rootDir>/test/integration/**/*.test.ts"] },
		{ ...common, displayName: "e2e", testMatch: ["<rootDir>/test/e2e/**/*.test.ts"] },
		// Debian's chromium driven by playwright-core: the admin map (`npm run test:browser`).
		{ ...common, displayName: "browser", testMatch: ["<rootDir>/test/browser/**/*.test.ts"] },
	],
};
