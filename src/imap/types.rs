//! The IMAP command AST: what the parser (`imap::parse`) produces and the session consumes.
//!
//! RFC 3501 §6 / RFC 9051 §6 commands, with the extensions pimap implements. Values here are
//! already validated for *syntax*; *semantics* (does the mailbox exist, is the name safe on
//! disk) are checked by the session and the store.

use std::fmt;

/// A password or other secret: `Debug` never prints it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub Vec<u8>);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// One complete command: `tag SP command CRLF` (RFC 3501 §9 `command`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaggedCommand {
    pub tag: String,
    pub command: Command,
}

/// A sequence number or UID in a set; `Star` is `*` (the largest in use).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeqNum {
    Value(u32),
    Star,
}

/// `seq-range`: `a:b` (either order) or a single number (`start == end`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeqRange {
    pub start: SeqNum,
    pub end: SeqNum,
}

/// `sequence-set` (RFC 3501 §9), or `$` (RFC 5182 SEARCHRES: the saved result).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SequenceSet {
    Ranges(Vec<SeqRange>),
    Saved,
}

impl SequenceSet {
    /// Does `n` belong to the set, where `star` is the value of `*`?
    /// (`Saved` never matches here: the session resolves it first.)
    pub fn contains(&self, n: u32, star: u32) -> bool {
        match self {
            SequenceSet::Saved => false,
            SequenceSet::Ranges(rs) => rs.iter().any(|r| {
                let a = match r.start {
                    SeqNum::Value(v) => v,
                    SeqNum::Star => star,
                };
                let b = match r.end {
                    SeqNum::Value(v) => v,
                    SeqNum::Star => star,
                };
                let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
                n >= lo && n <= hi
            }),
        }
    }
}

/// A message flag as sent by a client. System flags other than these five (and `\Recent`,
/// which clients may not store) are rejected by the parser.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Flag {
    Seen,
    Answered,
    Flagged,
    Deleted,
    Draft,
    /// `\Recent`: only legal in SEARCH/responses, never stored; the session rejects it in STORE/APPEND.
    Recent,
    /// A keyword atom (`$Forwarded`, `NonJunk`, ...), case preserved.
    Keyword(String),
}

/// `date` (RFC 3501 §9): `1-Feb-1994`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Date {
    pub year: u16,
    pub month: u8,
    pub day: u8,
}

/// `date-time` (RFC 3501 §9): `"17-Jul-1996 02:44:25 -0700"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateTime {
    pub date: Date,
    pub hour: u8,
    pub minute: u8,
    pub second: u8,
    /// Offset from UTC in minutes (`-0700` = -420).
    pub zone_minutes: i16,
}

impl DateTime {
    /// Seconds since the Unix epoch (UTC).
    pub fn unix_seconds(&self) -> i64 {
        days_from_civil(
            self.date.year as i64,
            self.date.month as u32,
            self.date.day as u32,
        ) * 86400
            + self.hour as i64 * 3600
            + self.minute as i64 * 60
            + self.second as i64
            - self.zone_minutes as i64 * 60
    }
}

impl Date {
    /// Days since 1970-01-01.
    pub fn days_since_epoch(&self) -> i64 {
        days_from_civil(self.year as i64, self.month as u32, self.day as u32)
    }
}

/// Howard Hinnant's days-from-civil algorithm (proleptic Gregorian).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

/// Inverse of `days_from_civil` (Howard Hinnant): (year, month 1-12, day 1-31).
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719468;
    let era = if z >= 0 { z } else { z - 146096 } / 146097;
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// `section-text` / `section-msgtext` (RFC 3501 §6.4.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SectionText {
    Header,
    /// Field names as sent (compare case-insensitively).
    HeaderFields(Vec<String>),
    HeaderFieldsNot(Vec<String>),
    Text,
    /// Only valid after a part number.
    Mime,
}

/// `section`: part numbers (`1.2.3`, empty for the whole message) then an optional text spec.
/// `BODY[]` is `Section { part: vec![], text: None }`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Section {
    pub part: Vec<u32>,
    pub text: Option<SectionText>,
}

/// One `fetch-att`. The macros ALL / FAST / FULL are expanded by the parser (RFC 3501 §6.4.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchAttr {
    Flags,
    InternalDate,
    Rfc822Size,
    Envelope,
    /// `BODY` without a section: the non-extensible BODYSTRUCTURE.
    Body,
    BodyStructure,
    Uid,
    /// `RFC822` = `BODY[]` and sets \Seen; response item name `RFC822`.
    Rfc822,
    /// `RFC822.HEADER` = `BODY.PEEK[HEADER]`; response item name `RFC822.HEADER`.
    Rfc822Header,
    /// `RFC822.TEXT` = `BODY[TEXT]` and sets \Seen; response item name `RFC822.TEXT`.
    Rfc822Text,
    /// `BODY[section]<partial>` or `BODY.PEEK[...]`; partial = (offset, length).
    BodySection {
        peek: bool,
        section: Section,
        partial: Option<(u32, u32)>,
    },
    /// RFC 3516 `BINARY[part]<partial>` / `BINARY.PEEK`.
    Binary {
        peek: bool,
        part: Vec<u32>,
        partial: Option<(u32, u32)>,
    },
    /// RFC 3516 `BINARY.SIZE[part]`.
    BinarySize {
        part: Vec<u32>,
    },
    /// RFC 7162 `MODSEQ`.
    ModSeq,
    /// RFC 8514 `SAVEDATE`: when the message was saved into this mailbox.
    SaveDate,
    /// RFC 8970 `PREVIEW` / `PREVIEW (LAZY)`: the start of the message's text.
    Preview {
        lazy: bool,
    },
}

/// `search-key` (RFC 3501 §6.4.4). A top-level list of keys is an `And`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SearchKey {
    All,
    Answered,
    Bcc(String),
    Before(Date),
    Body(String),
    Cc(String),
    Deleted,
    Draft,
    Flagged,
    From(String),
    /// HEADER field-name string
    Header(String, String),
    Keyword(String),
    Larger(u32),
    New,
    Not(Box<SearchKey>),
    Old,
    /// RFC 5032 WITHIN: INTERNALDATE at least this many seconds before the command.
    Older(u32),
    On(Date),
    /// `OR a b`, and a chain of ORs flattened (`OR OR a b c` = any of a, b, c): at least two
    /// keys, any of which must match.
    Or(Vec<SearchKey>),
    Recent,
    Seen,
    SentBefore(Date),
    SentOn(Date),
    SentSince(Date),
    Since(Date),
    Smaller(u32),
    Subject(String),
    Text(String),
    To(String),
    Uid(SequenceSet),
    Unanswered,
    Undeleted,
    Undraft,
    /// RFC 5032 WITHIN: INTERNALDATE less than this many seconds before the command.
    Younger(u32),
    Unflagged,
    Unkeyword(String),
    Unseen,
    /// A bare sequence set (message sequence numbers).
    SequenceSet(SequenceSet),
    /// Parenthesised list, or the top-level list.
    And(Vec<SearchKey>),
    /// RFC 7162 `MODSEQ n`.
    ModSeq(u64),
    /// RFC 8514 §4.2: the save date (compared as BEFORE / ON / SINCE compare INTERNALDATE).
    SavedBefore(Date),
    SavedOn(Date),
    SavedSince(Date),
    /// RFC 8514 §4.2: every message, when the mailbox keeps save dates.
    SaveDateSupported,
}

/// GETMETADATA's `DEPTH` (RFC 5464 §4.2.2): the entry only, its children, or all below it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MetadataDepth {
    #[default]
    Zero,
    One,
    Infinity,
}

/// A SORT key (RFC 5256 §3; DISPLAYFROM and DISPLAYTO from RFC 5957 §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortKey {
    Arrival,
    Cc,
    Date,
    DisplayFrom,
    DisplayTo,
    From,
    Size,
    Subject,
    To,
}

/// `sort-criterion = ["REVERSE" SP] sort-key` (RFC 5256 §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SortCriterion {
    pub reverse: bool,
    pub key: SortKey,
}

/// A THREAD algorithm (RFC 5256 §3 `thread-alg`; REFS is Dovecot's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThreadAlgorithm {
    OrderedSubject,
    References,
    Refs,
}

/// RFC 4731 ESEARCH `RETURN (...)` options, with RFC 5267 §4's CONTEXT, UPDATE and PARTIAL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SearchReturn {
    Min,
    Max,
    All,
    Count,
    Save,
    /// A hint that UPDATE or PARTIAL may follow; changes nothing (RFC 5267 §4.1).
    Context,
    /// Report later changes of the result as `ADDTO` / `REMOVEFROM` (RFC 5267 §4.3).
    Update,
    /// The results at these 1-based positions, low ≤ high (RFC 5267 §4.4).
    Partial(u32, u32),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusItem {
    Messages,
    Recent,
    UidNext,
    UidValidity,
    Unseen,
    /// RFC 8438
    Size,
    /// RFC 7162
    HighestModSeq,
    /// RFC 9051 §6.3.11: messages with \Deleted.
    Deleted,
    /// RFC 9208 §4.3.1: their total size, what an EXPUNGE would free.
    DeletedStorage,
}

/// STORE's `+FLAGS` / `-FLAGS` / `FLAGS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreMode {
    Replace,
    Add,
    Remove,
}

/// RFC 7162 §3.2.5 SELECT/EXAMINE parameter
/// `"QRESYNC" SP "(" uidvalidity SP mod-sequence-value [SP known-uids] [SP seq-match-data] ")"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QresyncParams {
    pub uid_validity: u32,
    pub mod_seq: u64,
    /// UIDs the client knows (no `*`).
    pub known_uids: Option<SequenceSet>,
    /// `(known-sequence-set SP known-uid-set)`.
    pub seq_match: Option<(SequenceSet, SequenceSet)>,
}

/// RFC 5258 LIST-EXTENDED selection options and RFC 5819 `RETURN (STATUS ...)`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ListOptions {
    pub subscribed: bool,
    pub remote: bool,
    pub recursive_match: bool,
    pub special_use: bool,
    pub return_subscribed: bool,
    pub return_children: bool,
    pub return_special_use: bool,
    pub return_status: Option<Vec<StatusItem>>,
    /// The extended syntax was used (selection options, a pattern list or RETURN, even
    /// empty ones): a parent that is only a hierarchy level is then `\NonExistent`, not
    /// `\Noselect` (RFC 5258 §3.4; Dovecot answers the same).
    pub extended: bool,
}

/// One message of an APPEND (RFC 3501 §6.3.11, RFC 3502 MULTIAPPEND).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendMessage {
    pub flags: Vec<Flag>,
    pub date: Option<DateTime>,
    /// A plain message is one [`AppendPart::Text`]; CATENATE (RFC 4469) gives its parts.
    pub parts: Vec<AppendPart>,
    /// Sent as `CATENATE (...)`: an empty result is refused the same way, but a part may be
    /// empty.
    pub catenate: bool,
}

/// A piece of an APPENDed message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppendPart {
    /// A literal's bytes. `at`: where its `{` is in the command, so that a literal the
    /// connection received into a file (the command holds `{0}` there) is found again.
    Text { at: usize, data: Vec<u8> },
    /// CATENATE's `URL`: an IMAP URL (RFC 5092) as sent, resolved by the session.
    Url(Vec<u8>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    // any state (RFC 3501 §6.1)
    Capability,
    Noop,
    Logout,
    // not authenticated (§6.2)
    StartTls,
    Login {
        user: String,
        password: Secret,
    },
    /// `AUTHENTICATE mech [initial-response]` (RFC 4959 SASL-IR: the base64 text as sent,
    /// `=` for an empty response).
    Authenticate {
        mechanism: String,
        initial: Option<String>,
    },
    // authenticated (§6.3); mailbox names are as sent (modified UTF-7), INBOX not yet folded
    Select {
        mailbox: String,
        condstore: bool,
        /// RFC 7162 §3.2.5 `(QRESYNC (...))`
        qresync: Option<QresyncParams>,
    },
    Examine {
        mailbox: String,
        condstore: bool,
        qresync: Option<QresyncParams>,
    },
    Create {
        mailbox: String,
    },
    Delete {
        mailbox: String,
    },
    Rename {
        from: String,
        to: String,
    },
    Subscribe {
        mailbox: String,
    },
    Unsubscribe {
        mailbox: String,
    },
    /// LIST; with LIST-EXTENDED the pattern may be a list of patterns.
    List {
        reference: String,
        patterns: Vec<String>,
        options: ListOptions,
    },
    Lsub {
        reference: String,
        pattern: String,
    },
    Status {
        mailbox: String,
        items: Vec<StatusItem>,
    },
    /// APPEND: one message, or several with MULTIAPPEND (RFC 3502), all stored or none.
    Append {
        mailbox: String,
        messages: Vec<AppendMessage>,
    },
    Namespace,
    Id,
    Enable(Vec<String>),
    Idle,
    /// `COMPRESS algorithm` (RFC 4978 §5), the mechanism as sent; only `DEFLATE` exists.
    Compress {
        mechanism: String,
    },
    /// `GETMETADATA [(options)] mailbox entries` (RFC 5464 §4.2): entry names checked
    /// (§3.2) and in lower case (they are case-insensitive); mailbox `""` is the server.
    GetMetadata {
        mailbox: String,
        entries: Vec<String>,
        /// `MAXSIZE n`: longer values are left out (`[METADATA LONGENTRIES n]`).
        max_size: Option<u32>,
        depth: MetadataDepth,
    },
    /// `SETMETADATA mailbox (entry value ...)` (RFC 5464 §4.3): `None` (NIL) removes.
    SetMetadata {
        mailbox: String,
        entries: Vec<(String, Option<Vec<u8>>)>,
    },
    // selected (§6.4)
    Check,
    Close,
    Unselect,
    Expunge,
    /// `UID EXPUNGE set` (RFC 4315)
    UidExpunge(SequenceSet),
    /// `CANCELUPDATE "tag" ...` (RFC 5267 §4.3): the searches' tags.
    CancelUpdate(Vec<String>),
    Search {
        uid: bool,
        charset: Option<String>,
        /// `Some` when `RETURN (...)` was given (ESEARCH); empty vec = `RETURN ()`.
        returns: Option<Vec<SearchReturn>>,
        criteria: SearchKey,
    },
    /// `SORT [RETURN (...)] (criteria) charset search-keys` (RFC 5256 §3, RFC 5267 §3).
    Sort {
        uid: bool,
        /// `Some` when `RETURN (...)` was given (ESORT).
        returns: Option<Vec<SearchReturn>>,
        program: Vec<SortCriterion>,
        charset: String,
        criteria: SearchKey,
    },
    /// `THREAD algorithm charset search-keys` (RFC 5256 §3).
    Thread {
        uid: bool,
        algorithm: ThreadAlgorithm,
        charset: String,
        criteria: SearchKey,
    },
    Fetch {
        uid: bool,
        set: SequenceSet,
        items: Vec<FetchAttr>,
        /// RFC 7162 `(CHANGEDSINCE n)`
        changed_since: Option<u64>,
        /// RFC 7162 §3.2.6 `VANISHED` modifier (UID FETCH with CHANGEDSINCE only).
        vanished: bool,
    },
    Store {
        uid: bool,
        set: SequenceSet,
        mode: StoreMode,
        silent: bool,
        flags: Vec<Flag>,
        /// RFC 7162 `(UNCHANGEDSINCE n)`
        unchanged_since: Option<u64>,
    },
    Copy {
        uid: bool,
        set: SequenceSet,
        mailbox: String,
    },
    Move {
        uid: bool,
        set: SequenceSet,
        mailbox: String,
    },
    /// RFC 9208 §4.3; the mailbox as sent (the answer repeats it).
    GetQuotaRoot {
        mailbox: String,
    },
    /// RFC 9208 §4.2.
    GetQuota {
        root: String,
    },
    /// RFC 9208 §4.4: resource names upper-cased, with their limits.
    SetQuota {
        root: String,
        limits: Vec<(String, u64)>,
    },
    /// `NOTIFY NONE` (`None`) or `NOTIFY SET ...` (RFC 5465 §3).
    Notify(Option<NotifySet>),
}

/// `NOTIFY SET [STATUS] event-group...` (RFC 5465 §3.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifySet {
    /// `STATUS`: send a STATUS for every non-selected mailbox the groups name, now.
    pub status: bool,
    pub groups: Vec<NotifyGroup>,
}

/// `"(" filter-mailboxes SP events ")"`; no events = `NONE` (RFC 5465).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifyGroup {
    pub filter: NotifyFilter,
    pub events: Vec<NotifyEvent>,
}

/// Which mailboxes an event group covers (RFC 5465).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotifyFilter {
    Selected,
    /// Like `Selected`, but expunges wait for a command (RFC 5465).
    SelectedDelayed,
    Inboxes,
    Personal,
    Subscribed,
    /// These mailboxes and all their descendants.
    Subtree(Vec<String>),
    Mailboxes(Vec<String>),
}

/// One event of an event group (RFC 5465).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotifyEvent {
    /// With the FETCH attributes to send for each new message (selected mailbox only).
    MessageNew(Vec<FetchAttr>),
    MessageExpunge,
    FlagChange,
    AnnotationChange,
    MailboxName,
    SubscriptionChange,
    MailboxMetadataChange,
    ServerMetadataChange,
}

impl NotifyEvent {
    /// The event's name as in the RFC (for `BADEVENT`).
    pub fn name(&self) -> &'static str {
        match self {
            NotifyEvent::MessageNew(_) => "MessageNew",
            NotifyEvent::MessageExpunge => "MessageExpunge",
            NotifyEvent::FlagChange => "FlagChange",
            NotifyEvent::AnnotationChange => "AnnotationChange",
            NotifyEvent::MailboxName => "MailboxName",
            NotifyEvent::SubscriptionChange => "SubscriptionChange",
            NotifyEvent::MailboxMetadataChange => "MailboxMetadataChange",
            NotifyEvent::ServerMetadataChange => "ServerMetadataChange",
        }
    }
}

impl Command {
    /// The command's name as used in log lines and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Capability => "CAPABILITY",
            Command::Noop => "NOOP",
            Command::Logout => "LOGOUT",
            Command::StartTls => "STARTTLS",
            Command::Login { .. } => "LOGIN",
            Command::Authenticate { .. } => "AUTHENTICATE",
            Command::Select { .. } => "SELECT",
            Command::Examine { .. } => "EXAMINE",
            Command::Create { .. } => "CREATE",
            Command::Delete { .. } => "DELETE",
            Command::Rename { .. } => "RENAME",
            Command::Subscribe { .. } => "SUBSCRIBE",
            Command::Unsubscribe { .. } => "UNSUBSCRIBE",
            Command::List { .. } => "LIST",
            Command::Lsub { .. } => "LSUB",
            Command::Status { .. } => "STATUS",
            Command::Append { .. } => "APPEND",
            Command::Namespace => "NAMESPACE",
            Command::Id => "ID",
            Command::Enable(_) => "ENABLE",
            Command::Idle => "IDLE",
            Command::Compress { .. } => "COMPRESS",
            Command::GetMetadata { .. } => "GETMETADATA",
            Command::SetMetadata { .. } => "SETMETADATA",
            Command::Check => "CHECK",
            Command::Close => "CLOSE",
            Command::Unselect => "UNSELECT",
            Command::CancelUpdate(_) => "CANCELUPDATE",
            Command::Expunge => "EXPUNGE",
            Command::UidExpunge(_) => "UID EXPUNGE",
            Command::Search { .. } => "SEARCH",
            Command::Sort { .. } => "SORT",
            Command::Thread { .. } => "THREAD",
            Command::Fetch { .. } => "FETCH",
            Command::Store { .. } => "STORE",
            Command::Copy { .. } => "COPY",
            Command::Move { .. } => "MOVE",
            Command::GetQuotaRoot { .. } => "GETQUOTAROOT",
            Command::GetQuota { .. } => "GETQUOTA",
            Command::SetQuota { .. } => "SETQUOTA",
            Command::Notify(_) => "NOTIFY",
        }
    }
}
