// The JSON the admin API answers, as types shared by the routes (src/admin/routes) and the page
// (src/admin/page, which imports them type-only: nothing here exists at run time). The shapes of the
// queue, trace and mailbox objects are the CLI's `--json` contracts (src/ops); these types name them.

export interface Problem {
  readonly type: string;
  readonly title: string;
  readonly status: number;
  readonly detail?: string;
  readonly instance?: string;
  readonly errors?: readonly { readonly field: string; readonly message: string }[];
}

export interface SessionInfo {
  readonly name: string;
  readonly via: 'session' | 'token';
  readonly csrf: string | null;
}

export interface StatusInfo {
  readonly admins: boolean;
  readonly hostname: string;
}

export type RecipientStatus = 'queued' | 'deferred' | 'delivered' | 'bounced';

export interface QueueRecipient {
  readonly address: string;
  readonly status: RecipientStatus;
  readonly attempts: number;
  readonly nextAttempt: string;
  readonly lastReply: string | null;
  readonly delayWarned: boolean;
  readonly bounceRequested: boolean;
}

/** `tern queue list --json`'s object. */
export interface QueueMessage {
  readonly id: string;
  readonly sender: string;
  readonly size: number;
  readonly arrival: string;
  readonly held: boolean;
  readonly recipients: readonly QueueRecipient[];
}

export interface QueueList {
  readonly total: number;
  readonly offset: number;
  readonly limit: number;
  readonly messages: readonly QueueMessage[];
}

/** `tern queue show --json`'s object. */
export interface QueueDetail extends QueueMessage {
  readonly recipients: readonly (QueueRecipient & {
    readonly remoteMta: string | null;
    readonly diagnostic: string | null;
  })[];
  readonly client: {
    readonly ip: string;
    readonly hostname: string | null;
    readonly helo: string;
    readonly service: string;
    readonly tls: { readonly version: string; readonly cipher: string } | null;
    readonly authUser: string | null;
  };
  readonly headers: string;
}

export type QueueAction = 'flush' | 'hold' | 'release' | 'delete' | 'bounce';

export interface ActionResult {
  readonly id: string;
  readonly ok: boolean;
  readonly recipients?: number;
  readonly error?: string;
}

/** `tern trace --json`'s event: time, event, queueId, source, then the step's own fields. */
export interface TraceEvent {
  readonly time: string;
  readonly event: string;
  readonly queueId: string;
  readonly source: string;
  readonly [detail: string]: unknown;
}

export interface TraceResult {
  readonly messages: readonly { readonly queueId: string; readonly events: readonly TraceEvent[] }[];
}

export interface MessageView {
  readonly size: number;
  readonly headers: readonly { readonly name: string; readonly value: string }[];
  readonly subject: string;
  readonly from: string;
  readonly to: string;
  readonly date: string;
  readonly messageId: string;
  readonly authenticationResults: readonly string[];
  readonly text: string | null;
  readonly htmlPart: string | null;
  readonly attachments: readonly {
    readonly part: string;
    readonly filename: string | null;
    readonly contentType: string;
    readonly size: number;
  }[];
  readonly tooLarge: boolean;
}

export interface MinuteCounts {
  readonly minuteMs: number;
  readonly received: number;
  readonly delivered: number;
  readonly deferred: number;
  readonly bounced: number;
  readonly authFailures: number;
}

/** One metric of prom-client's JSON (getMetricsAsJSON). */
export interface MetricJson {
  readonly name: string;
  readonly type: string;
  readonly values: readonly {
    readonly value: number;
    readonly labels: Readonly<Record<string, string | number>>;
  }[];
}

export interface Stats {
  readonly now: string;
  readonly series: readonly MinuteCounts[];
  readonly metrics: readonly MetricJson[];
  readonly queue: {
    readonly messages: number;
    readonly held: number;
    readonly recipients: Readonly<Record<RecipientStatus, number>>;
    readonly pendingByAge: Readonly<Record<'5m' | '1h' | '1d' | 'older', number>>;
    readonly oldestPendingMs: number | null;
  };
}

export interface UserRow {
  readonly address: string;
  readonly created: string;
  readonly hasPassword: boolean;
  readonly sendAs: readonly string[];
}

export interface AliasRow {
  readonly alias: string;
  readonly target: string;
}

export interface DnsRecordRow {
  readonly name: string;
  readonly type: 'MX' | 'TXT';
  readonly value: string;
  readonly purpose: string;
  readonly dns?: {
    readonly status: 'match' | 'missing' | 'different' | 'error';
    readonly found: readonly string[];
  };
}

export interface DomainInfo {
  readonly domain: string;
  readonly records: readonly DnsRecordRow[];
  readonly mtaStsPolicy: string;
  readonly dkimKeys: number;
}

export interface DkimKeyRow {
  readonly domain: string;
  readonly selector: string;
  readonly algorithm: string;
  readonly created: string | null;
  readonly dnsName: string;
  readonly value: string;
}

export interface FolderRow {
  readonly name: string;
  readonly messages: number;
  readonly size: number;
  readonly unseen: number;
  readonly specialUse: string | null;
  readonly subscribed: boolean;
  readonly selectable: boolean;
}

export interface MailboxMessage {
  readonly id: string;
  readonly uid: number;
  readonly mailbox: string;
  readonly from: string;
  readonly subject: string;
  readonly size: number;
  readonly date: string;
  readonly flags: readonly string[];
  readonly internalDate: string;
}

/** The data of one live event (GET /api/events); `event` is the log event it came from. */
export interface LiveEvent {
  readonly event: string;
  readonly time: string;
  readonly [field: string]: unknown;
}
