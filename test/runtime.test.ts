import assert from "node:assert/strict";

describe("runtime", () => {
  it("runs the test suite on Node 22 or newer even where the system Node is older", () => {
    const major = Number(process.versions.node.split(".")[0]);
    assert.ok(major >= 22, `tests ran on Node ${process.versions.node}; the node@22 devDependency should come first on PATH`);
  });
});
