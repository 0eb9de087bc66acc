//! Flags and keywords: file-name letters, `dovecot-keywords` (under the uidlist lock, as
//! Dovecot adds them), `pimap-keywords` for keywords beyond the 26 letters, and STORE's
//! rename of a message file.

use super::*;

/// A `pimap-keywords` line whose message is gone may still be waiting for its file (an APPEND
/// or COPY writes the line first): lines are dropped only once their file name's timestamp is
/// older than this.
pub(super) const EXTRAS_GRACE: Duration = Duration::from_secs(3600);

/// The Unix time at the start of a file name written by a maildir writer (`<secs>.`).
pub(super) fn name_secs(base: &str) -> Option<u64> {
    base.split_once('.')?.0.parse().ok()
}

impl Mailbox {
    /// Letter indexes for keywords, adding new ones to `dovecot-keywords` under its dotlock,
    /// and the keywords left without a letter (all 26 taken) for `pimap-keywords`.
    pub(super) fn keyword_indexes(&mut self, kws: &[String]) -> Result<(Vec<usize>, Vec<String>)> {
        self.touch();
        let wanted: Vec<&String> = kws.iter().collect();
        for k in &wanted {
            if !keywords::valid_keyword(k) {
                return Err(StoreError::Cannot(format!("invalid keyword {k:?}")));
            }
        }
        let full = (0..keywords::MAX_LETTERS).all(|i| self.keywords.get(i).is_some());
        if full || wanted.iter().all(|k| self.keywords.index_of(k).is_some()) {
            let mut idx = Vec::new();
            let mut overflow = Vec::new();
            for k in wanted {
                match self.keywords.index_of(k) {
                    Some(i) => idx.push(i),
                    None => overflow.push(k.clone()),
                }
            }
            return Ok((idx, overflow));
        }
        // Dovecot adds keywords to dovecot-keywords only under the uidlist lock (and then
        // under dovecot-keywords.lock, which it removes unasked first): take both, in that
        // order, and re-read the file under them, so no letter is ever given twice.
        let _uidlist = DotLock::acquire(&self.dir.join(UIDLIST))?;
        let path = self.dir.join(KEYWORDS);
        let lock = DotLock::acquire(&path)?;
        let old_mtime = fs::metadata(&path).ok().map(|md| mtime_secs(&md));
        let mut kw = read_keywords(&self.dir)?;
        let before = kw.clone();
        let mut out = Vec::new();
        let mut overflow = Vec::new();
        for k in wanted {
            match kw.get_or_add(k) {
                Ok(i) => out.push(i),
                Err(keywords::TooMany) => overflow.push(k.clone()),
            }
        }
        if kw != before {
            // Dovecot re-reads the file only when its mtime (whole seconds) changed.
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0);
            let secs = old_mtime.map_or(now, |old| now.max(old.saturating_add(1)));
            let mtime = UNIX_EPOCH + Duration::from_secs(secs.max(0) as u64);
            lock.replace_with_mtime(kw.serialize().as_bytes(), Some(mtime))?;
        }
        self.keywords = kw;
        Ok((out, overflow))
    }

    /// Change `pimap-keywords` under its dotlock: re-read it, apply `change`, drop lines of
    /// messages long gone, and write it back (tmp + fsync + rename) if anything changed. An
    /// unusable file is set aside as `pimap-keywords.corrupt` first (logged).
    pub(super) fn update_extras(
        &mut self,
        change: impl FnOnce(&mut ExtraKeywords) -> bool,
    ) -> Result<()> {
        self.touch();
        let path = self.dir.join(EXTRAS);
        let lock = DotLock::acquire(&path)?;
        let mut k = match read_optional(&path)? {
            None => ExtraKeywords::default(),
            Some(b) => match ExtraKeywords::parse(&String::from_utf8_lossy(&b)) {
                Ok((k, _)) => k,
                Err(Unusable(reason)) => {
                    let aside = self.dir.join(format!("{EXTRAS}.corrupt"));
                    log::error!(
                        "{}: not usable ({reason}); moved to {} and started afresh",
                        path.display(),
                        aside.display()
                    );
                    let _ = fs::rename(&path, &aside);
                    ExtraKeywords::default()
                }
            },
        };
        let before = k.clone();
        let before_names = before.names().len();
        if !change(&mut k) {
            return Err(StoreError::Cannot("keyword cannot be stored".into()));
        }
        let names = k.names();
        if names.len() > extra_keywords::MAX_EXTRA && names.len() > before_names {
            return Err(StoreError::Cannot(format!(
                "too many keywords in this mailbox (at most {})",
                keywords::MAX_LETTERS + extra_keywords::MAX_EXTRA
            )));
        }
        self.collect_extras(&mut k);
        if k != before {
            lock.replace(k.serialize().as_bytes())?;
        }
        self.extra_names = k.names();
        self.extras = k;
        Ok(())
    }

    /// Drop the lines of messages that are gone: not in this mailbox's last scan, written
    /// long enough ago that no APPEND or COPY can still be placing the file, and absent from
    /// two fresh directory scans (a flag rename can hide a file from one readdir).
    pub(super) fn collect_extras(&self, k: &mut ExtraKeywords) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let known: HashSet<&str> = self.locs.iter().map(Loc::base).collect();
        let candidates: Vec<String> = k
            .bases()
            .filter(|b| !known.contains(b))
            .filter(|b| name_secs(b).is_some_and(|t| t + EXTRAS_GRACE.as_secs() < now))
            .map(str::to_string)
            .collect();
        if candidates.is_empty() {
            return;
        }
        let mut present: HashSet<String> = HashSet::new();
        for _ in 0..2 {
            match scan(&self.dir) {
                Ok(files) => present.extend(files.iter().map(|f| f.base().to_string())),
                Err(_) => return,
            }
        }
        for b in candidates {
            if !present.contains(&b) {
                k.set(&b, &[]);
            }
        }
    }

    /// File-name letters for `flags`, keeping the letters of `old_letters` we don't
    /// interpret. `$Forwarded` is stored like Dovecot 2.3 stores it (a keyword letter); a `P`
    /// already present stands for it and is kept while `$Forwarded` stays set.
    /// Also returns the keywords that got no letter (for `pimap-keywords`).
    pub(super) fn letters_for(
        &mut self,
        flags: &Flags,
        old_letters: &str,
    ) -> Result<(String, Vec<String>)> {
        let kws = letter_keywords(flags, old_letters);
        let (idx, overflow) = self.keyword_indexes(&kws)?;
        Ok((self.encode_letters(flags, old_letters, idx), overflow))
    }

    /// [`Mailbox::letters_for`] with the letters this mailbox already has, leaving out keywords
    /// without one; writes nothing and takes no lock (for use under the uidlist lock).
    pub(super) fn known_letters(&self, flags: &Flags, old_letters: &str) -> String {
        let idx = (letter_keywords(flags, old_letters).iter())
            .filter_map(|k| self.keywords.index_of(k))
            .collect();
        self.encode_letters(flags, old_letters, idx)
    }

    /// The letters of `flags` with the keyword letters `idx`, keeping what `old_letters` has
    /// that this mailbox does not interpret.
    fn encode_letters(&self, flags: &Flags, old_letters: &str, idx: Vec<usize>) -> String {
        let old = filename::decode_letters(old_letters);
        let passed = old.passed && has_forwarded(flags);
        let mut unknown = old.unknown.clone();
        // Letters of keywords this mailbox does not define are kept as they were.
        for i in old.keyword_indexes {
            if self.keywords.get(i).is_none() && i < 26 {
                unknown.push((b'a' + i as u8) as char);
            }
        }
        let l = Letters {
            system: flags.system & 0x1f,
            passed,
            keyword_indexes: idx,
            unknown,
        };
        filename::encode_letters(&l)
    }

    /// Set a message's flags to `flags` (renames the file within cur/; records new
    /// keywords). Only what differs from the flags of the last `refresh` is changed, and it
    /// is applied to the message's state on disk at that moment (its current file name,
    /// `pimap-keywords` re-read under its lock), so flags other sessions or processes
    /// changed meanwhile are kept, as when Dovecot applies a STORE.
    pub fn set_flags(&mut self, uid: u32, flags: &Flags) -> Result<()> {
        self.touch();
        self.check_writable()?;
        let i = self.index_of(uid).ok_or(StoreError::Expunged(uid))?;
        let mut loc = self.locs.get(i).cloned().ok_or(StoreError::Expunged(uid))?;
        let seen = self
            .messages
            .get(i)
            .map(|m| m.flags.clone())
            .unwrap_or_default();
        let has = |set: &[String], k: &str| set.iter().any(|x| x.eq_ignore_ascii_case(k));
        let added: Vec<String> = (flags.keywords.iter())
            .filter(|k| !has(&seen.keywords, k))
            .cloned()
            .collect();
        let removed: Vec<String> = (seen.keywords.iter())
            .filter(|k| !has(&flags.keywords, k))
            .cloned()
            .collect();
        let (set_sys, clear_sys) = (flags.system & !seen.system, seen.system & !flags.system);
        let apply = |cur: &Flags| -> Flags {
            Flags {
                system: (cur.system & !clear_sys) | set_sys,
                keywords: edit_keywords(&cur.keywords, &removed, &added),
            }
        };
        // Keywords without a letter first: if they cannot be stored, nothing changes.
        let (_, overflow) = self.letters_for(
            &Flags {
                system: 0,
                keywords: added.clone(),
            },
            "",
        )?;
        let base = loc.base().to_string();
        if !overflow.is_empty() || (!removed.is_empty() && self.dir.join(EXTRAS).exists()) {
            self.update_extras(|k| {
                let kws = edit_keywords(k.get(&base), &removed, &overflow);
                k.get(&base) == kws.as_slice() || k.set(&base, &kws)
            })?;
        }
        // Renamed under the uidlist lock, as Dovecot renames only while it holds it: Dovecot
        // reads cur/ under that lock, and a file renamed while a directory is read may be
        // listed under neither name, which Dovecot takes for an expunge (and shows the file
        // again later under a new UID). Every keyword has its letter by now (or lives in
        // pimap-keywords), so nothing below takes the lock again.
        let _uidlist = DotLock::acquire(&self.dir.join(UIDLIST))?;
        // A rename by someone else meanwhile (ENOENT): find the file again and re-apply.
        for attempt in 0..20 {
            let old_letters = filename::split(&loc.name).letters.to_string();
            let target = apply(&self.flags_with_extras(&loc.name, false));
            let letters = self.known_letters(&target, &old_letters);
            let new_name = filename::cur_name(loc.base(), &letters);
            if loc.sub == Sub::Cur && new_name == loc.name {
                break;
            }
            match fs::rename(self.path_of(&loc), self.dir.join("cur").join(&new_name)) {
                Ok(()) => {
                    loc = Loc {
                        sub: Sub::Cur,
                        name: new_name,
                        raw: loc.raw,
                    };
                    break;
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && attempt < 19 => {
                    let f = locate(&self.dir, loc.base()).ok_or(StoreError::Expunged(uid))?;
                    loc = Loc {
                        sub: f.sub,
                        name: f.name,
                        raw: loc.raw,
                    };
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(StoreError::Expunged(uid))
                }
                Err(e) => return Err(io_err("renaming", &self.path_of(&loc), e)),
            }
        }
        let new_flags = self.flags_of(&loc.name);
        let system = new_flags.system;
        if let (Some(m), Some(l)) = (self.messages.get_mut(i), self.locs.get_mut(i)) {
            self.forwarded |= has_forwarded(&new_flags);
            if m.flags != new_flags {
                self.changes.push(Change::Flags {
                    uid,
                    origin: self.origin,
                });
            }
            m.flags = new_flags;
            *l = loc;
            self.track_deleted(uid, system);
        }
        Ok(())
    }
}

/// The keywords of `flags` that want a keyword letter: all but `$Forwarded` where the maildir
/// `P` flag (in `old_letters`) already stands for it.
fn letter_keywords(flags: &Flags, old_letters: &str) -> Vec<String> {
    let passed = filename::decode_letters(old_letters).passed && has_forwarded(flags);
    (flags.keywords.iter())
        .filter(|k| !(passed && k.eq_ignore_ascii_case(FORWARDED)))
        .cloned()
        .collect()
}

/// `keywords` without those in `removed` and with those of `added` it lacks (keywords compare
/// case-insensitively; order kept, additions last).
fn edit_keywords(keywords: &[String], removed: &[String], added: &[String]) -> Vec<String> {
    let has = |set: &[String], k: &str| set.iter().any(|x| x.eq_ignore_ascii_case(k));
    let mut out: Vec<String> = (keywords.iter())
        .filter(|k| !has(removed, k))
        .cloned()
        .collect();
    for k in added {
        if !has(&out, k) {
            out.push(k.clone());
        }
    }
    out
}
