// Typed errors: what a refusal's status code and details say, decoded.
import { BinaryReader } from "@bufbuild/protobuf/wire";
import { Code, ConnectError } from "@connectrpc/connect";
import {
  CompatibilityErrorSchema,
  CompileErrorSchema,
  type CompatibilityError,
  type CompileError,
} from "./gen/pipeline/v1/schema_pb.js";
import {
  PublishFailureSchema,
  ValidationErrorSchema,
  type EventError,
  type FieldViolation,
} from "./gen/pipeline/v1/ingest_pb.js";

/** One field a google.rpc.BadRequest names. */
export interface BadRequestField {
  field: string;
  description: string;
}

/**
 * PipelineError is why an event (or any call) failed. `violations` are the
 * reasons a refused event failed validation; `compatibility` the detail of
 * a schema refused as incompatible; `eventId` the event's id (minted by
 * the Producer unless given): publish again with it and no row doubles.
 */
export class PipelineError extends Error {
  override name = "PipelineError";
  /** The status code (connect's Code). */
  code: Code;
  /** The code as Connect's JSON names it: "invalid_argument", "unavailable", … */
  codeName: string;
  /** The server's message, without the code prefix. */
  rawMessage: string;
  eventId = "";
  subject = "";
  schemaId = 0n;
  violations: FieldViolation[] = [];
  totalViolations = 0;
  badRequest: BadRequestField[] = [];
  compatibility?: CompatibilityError;
  compile?: CompileError;
  /** From a google.rpc.ErrorInfo detail. */
  reason = "";
  metadata: Record<string, string> = {};
  /**
   * The last attempt failed in a way a retry could cure (unavailable,
   * resource_exhausted, outcome unknown) and the Producer gave up at the
   * event's deadline: the event may be stored. Publish it again with the
   * same eventId.
   */
  retryable = false;
  /** How many times the Producer sent the event. */
  attempts = 0;

  constructor(code: Code, message: string, cause?: unknown) {
    super(`[${codeToName(code)}] ${message}`, { cause });
    this.code = code;
    this.codeName = codeToName(code);
    this.rawMessage = message;
  }

  /** Decodes any error of a generated client's call or of the Producer. */
  static from(err: unknown): PipelineError {
    if (err instanceof PipelineError) return err;
    const cerr = ConnectError.from(err);
    const out = new PipelineError(cerr.code, cerr.rawMessage, err);
    for (const v of cerr.findDetails(ValidationErrorSchema)) {
      out.subject = v.subject;
      out.schemaId = v.schemaId;
      out.violations = v.violations;
      out.totalViolations = v.totalViolations;
    }
    for (const f of cerr.findDetails(PublishFailureSchema)) {
      out.eventId = f.eventId;
      out.schemaId = f.schemaId;
    }
    for (const c of cerr.findDetails(CompatibilityErrorSchema)) {
      out.compatibility = c;
      out.subject = c.subject;
    }
    for (const c of cerr.findDetails(CompileErrorSchema)) out.compile = c;
    for (const d of cerr.details) {
      if (!("type" in d)) continue;
      if (d.type === "google.rpc.BadRequest") out.badRequest = decodeBadRequest(d.value);
      if (d.type === "google.rpc.ErrorInfo") [out.reason, out.metadata] = decodeErrorInfo(d.value);
    }
    out.refresh();
    return out;
  }

  /** Decodes one event's error of a batch or stream answer. */
  static fromEventError(e: EventError): PipelineError {
    const out = new PipelineError(codeFromName(e.code), e.message);
    out.violations = e.violations;
    out.totalViolations = e.totalViolations;
    out.refresh();
    return out;
  }

  /** Rewrites message from the fields (after the Producer set its own). */
  refresh(): void {
    let m = `[${this.codeName}]`;
    if (this.eventId) m += ` event ${this.eventId}:`;
    m += ` ${this.rawMessage}`;
    for (const v of this.violations.slice(0, 3)) m += `; ${v.field}: ${v.message} (${v.rule})`;
    if (this.violations.length > 3) m += `; and ${Math.max(this.totalViolations, this.violations.length) - 3} more`;
    if (this.retryable) m += ` (gave up after ${this.attempts} attempts; the outcome is unknown: publish again with the same event id)`;
    this.message = m;
  }
}

/** "invalid_argument" for Code.InvalidArgument. */
export function codeToName(code: Code): string {
  return (Code[code] ?? "Unknown").replace(/[A-Z]/g, (c, i: number) => (i ? "_" : "") + c.toLowerCase());
}

/** Code.InvalidArgument for "invalid_argument"; Unknown for a name it does not know. */
export function codeFromName(name: string): Code {
  const key = name.replace(/(^|_)([a-z])/g, (_, __, c: string) => c.toUpperCase()) as keyof typeof Code;
  const code = Code[key];
  return typeof code === "number" ? code : Code.Unknown;
}

// google.rpc.BadRequest { repeated FieldViolation field_violations = 1; }
// FieldViolation { string field = 1; string description = 2; }
function decodeBadRequest(b: Uint8Array): BadRequestField[] {
  const out: BadRequestField[] = [];
  forFields(b, (n, r) => {
    if (n !== 1) return false;
    const fv = { field: "", description: "" };
    forFields(r.bytes(), (m, rr) => {
      if (m === 1) fv.field = rr.string();
      else if (m === 2) fv.description = rr.string();
      else return false;
      return true;
    });
    out.push(fv);
    return true;
  });
  return out;
}

// google.rpc.ErrorInfo { string reason = 1; string domain = 2; map<string, string> metadata = 3; }
function decodeErrorInfo(b: Uint8Array): [string, Record<string, string>] {
  let reason = "";
  const md: Record<string, string> = {};
  forFields(b, (n, r) => {
    if (n === 1) reason = r.string();
    else if (n === 3) {
      let k = "";
      let v = "";
      forFields(r.bytes(), (m, rr) => {
        if (m === 1) k = rr.string();
        else if (m === 2) v = rr.string();
        else return false;
        return true;
      });
      md[k] = v;
    } else return false;
    return true;
  });
  return [reason, md];
}

// forFields calls f for each field; f returns false to have it skipped.
function forFields(b: Uint8Array, f: (field: number, r: BinaryReader) => boolean): void {
  const r = new BinaryReader(b);
  while (r.pos < r.len) {
    const [field, wireType] = r.tag();
    if (!f(field, r)) r.skip(wireType);
  }
}
