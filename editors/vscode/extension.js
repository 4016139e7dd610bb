// syxdbg for VS Code: starts `syxdbg dap` (stdio) as the debug adapter of type "syxdbg".
"use strict";
const vscode = require("vscode");

class AdapterFactory {
  createDebugAdapterDescriptor(session) {
    const command = vscode.workspace.getConfiguration("syxdbg").get("command") || ["syxdbg"];
    return new vscode.DebugAdapterExecutable(command[0], [...command.slice(1), "dap"]);
  }
}

function activate(context) {
  context.subscriptions.push(
    vscode.debug.registerDebugAdapterDescriptorFactory("syxdbg", new AdapterFactory()),
    vscode.commands.registerCommand("syxdbg.gotoPosition", async () => {
      const session = vscode.debug.activeDebugSession;
      if (!session || session.type !== "syxdbg") {
        vscode.window.showErrorMessage("No syxdbg debug session is active.");
        return;
      }
      const position = await vscode.window.showInputBox({
        prompt: "Position: an instruction count, +N/-N, origin, frontier or a snapshot name",
      });
      if (position) {
        await session.customRequest("gotoPosition", { position });
      }
    })
  );
}

function deactivate() {}

module.exports = { activate, deactivate };
