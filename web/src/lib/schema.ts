// Which file of a schema declares its message. Pure: no DOM.

/** The parts of a FileDescriptorProto that say what a file declares. */
export interface FileDecl {
  name: string;
  package: string;
  messageType: readonly { name: string }[];
}

/**
 * messageFile returns the name of the file among files that declares the
 * message (a full name such as "shop.v1.Order" or, for a nested message,
 * "shop.v1.Order.Item": the file declaring its top-level "Order"), or
 * undefined when none of them does.
 */
export function messageFile(files: readonly FileDecl[], message: string): string | undefined {
  for (const f of files) {
    const pkg = f.package;
    let rest: string;
    if (pkg === "") rest = message;
    else if (message.startsWith(`${pkg}.`)) rest = message.slice(pkg.length + 1);
    else continue;
    const top = rest.split(".")[0];
    if (top && f.messageType.some((m) => m.name === top)) return f.name;
  }
  return undefined;
}
