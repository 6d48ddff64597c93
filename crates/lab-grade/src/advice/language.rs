//! Which language a submission is written in, read from its command (and, for a script
//! that starts another program, from the script): so that advice speaks the program's
//! own terms (`socket.on('error')` for Node.js, `sendall()` for Python).

use std::path::Path;

/// The language a submission is written in, as far as its command shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    Python,
    /// JavaScript on Node.js.
    Node,
    Java,
    /// A compiled binary (C, C++, or anything else that makes an executable): advice in
    /// terms of the C socket API, which they all share.
    Native,
    Go,
    /// C# and other .NET languages.
    DotNet,
    Ruby,
    /// Nothing recognisable: advice in words that fit any language.
    Unknown,
}

impl Language {
    /// The language's name for reports.
    pub fn name(self) -> &'static str {
        match self {
            Language::Python => "Python",
            Language::Node => "Node.js",
            Language::Java => "Java",
            Language::Native => "a compiled program (C, C++…)",
            Language::Go => "Go",
            Language::DotNet => ".NET",
            Language::Ruby => "Ruby",
            Language::Unknown => "unknown",
        }
    }
}

/// The language of a command: the interpreter's name (`python3`, `node`, `java` or a
/// `.jar`, `go run`, `dotnet`, `ruby`), a script's `#!` line, a shell script that `exec`s
/// one of these (also `sh -c '…'`), or an executable binary. `dir` is where relative
/// paths in the command are found.
pub fn detect_language(argv: &[String], dir: Option<&Path>) -> Language {
    detect(argv, dir, 0)
}

fn by_name(word: &str) -> Option<Language> {
    let base = word.rsplit('/').next().unwrap_or(word);
    let language = if base.starts_with("python") || base == "py" || base == "pypy3" {
        Language::Python
    } else if matches!(base, "node" | "nodejs" | "npm" | "npx" | "bun" | "deno") {
        Language::Node
    } else if matches!(base, "java" | "javac" | "jshell") || base.ends_with(".jar") {
        Language::Java
    } else if matches!(
        base,
        "cc" | "gcc" | "clang" | "g++" | "clang++" | "make" | "cmake"
    ) {
        Language::Native
    } else if base == "go" {
        Language::Go
    } else if base == "dotnet" || base.ends_with(".dll") {
        Language::DotNet
    } else if base == "ruby" || base.ends_with(".rb") {
        Language::Ruby
    } else if base.ends_with(".py") {
        Language::Python
    } else if base.ends_with(".js") || base.ends_with(".mjs") {
        Language::Node
    } else {
        return None;
    };
    Some(language)
}

fn detect(argv: &[String], dir: Option<&Path>, depth: usize) -> Language {
    let Some(first) = argv.first() else {
        return Language::Unknown;
    };
    if depth > 3 {
        return Language::Unknown;
    }
    if let Some(language) = by_name(first) {
        return language;
    }
    let base = first.rsplit('/').next().unwrap_or(first);
    if matches!(
        base,
        "sh" | "bash" | "dash" | "zsh" | "env" | "exec" | "stdbuf" | "timeout"
    ) {
        // `sh -c 'exec node server.js'`, `sh run.sh`, `env X=1 python3 …`.
        if let Some(at) = argv.iter().position(|w| w == "-c")
            && let Some(script) = argv.get(at + 1)
        {
            return in_script(script, dir, depth);
        }
        let rest: Vec<String> = argv[1..]
            .iter()
            .filter(|w| !w.starts_with('-') && !w.contains('='))
            .cloned()
            .collect();
        if let Some(script) = rest.first()
            && let Some(text) = read_start(script, dir)
            && matches!(base, "sh" | "bash" | "dash" | "zsh")
        {
            return in_script(&text, dir, depth);
        }
        return detect(&rest, dir, depth + 1);
    }
    // A file: a script with a #! line, or a binary.
    match read_start(first, dir) {
        Some(text) if text.starts_with("#!") => in_script(&text, dir, depth),
        _ => {
            let path = resolve(first, dir);
            let elf = std::fs::read(&path)
                .ok()
                .is_some_and(|bytes| bytes.starts_with(b"\x7fELF"));
            if elf {
                Language::Native
            } else {
                Language::Unknown
            }
        }
    }
}

/// The language a shell script runs: the first command word (`exec node …`) that names one.
fn in_script(text: &str, dir: Option<&Path>, depth: usize) -> Language {
    for line in text.lines() {
        let line = line.trim().trim_start_matches("#!");
        for word in line.split_whitespace() {
            if let Some(language) = by_name(word) {
                return language;
            }
        }
        let words: Vec<String> = line
            .split_whitespace()
            .filter(|w| *w != "exec")
            .map(str::to_string)
            .collect();
        if let Some(first) = words.first()
            && (first.starts_with("./") || first.starts_with('/'))
            && !first.ends_with("sh")
            && detect(&words, dir, depth + 1) == Language::Native
        {
            return Language::Native;
        }
    }
    Language::Unknown
}

/// The file a command word names: `{dir}` (batch mode's placeholder, still unfilled in the
/// template) is the submission's folder, and a relative path is inside it.
fn resolve(word: &str, dir: Option<&Path>) -> std::path::PathBuf {
    match dir {
        Some(dir) if word.starts_with("{dir}") => {
            Path::new(&word.replacen("{dir}", &dir.display().to_string(), 1)).to_path_buf()
        }
        Some(dir) if !word.starts_with('/') => dir.join(word),
        _ => Path::new(word).to_path_buf(),
    }
}

/// The first 4 KiB of a file, as text, if it is one.
fn read_start(word: &str, dir: Option<&Path>) -> Option<String> {
    use std::io::Read;
    let mut file = std::fs::File::open(resolve(word, dir)).ok()?;
    let mut buf = vec![0u8; 4096];
    let n = file.read(&mut buf).ok()?;
    buf.truncate(n);
    String::from_utf8(buf).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_language_is_read_from_the_command() {
        let words = |line: &str| line.split(' ').map(str::to_string).collect::<Vec<_>>();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("run.sh"),
            "#!/bin/sh\ncd \"$(dirname \"$0\")\"\nexec node server.js \"$@\"\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("tool"), "#!/usr/bin/env ruby\nputs 1\n").unwrap();
        let cases = [
            ("python3 server.py {port}", Language::Python),
            ("/usr/bin/python3.11 -u s.py", Language::Python),
            ("node server.js {port}", Language::Node),
            ("java -jar chat.jar {port}", Language::Java),
            ("java Server {port}", Language::Java),
            ("go run . {port}", Language::Go),
            ("dotnet run", Language::DotNet),
            ("ruby client.rb", Language::Ruby),
            ("sh run.sh {port}", Language::Node),
            // The documented batch template: {dir} is the submission's folder.
            ("sh {dir}/run.sh {port}", Language::Node),
            ("bash {dir}/run.sh", Language::Node),
            ("./tool", Language::Ruby),
            ("/bin/true", Language::Native),
            ("mystery", Language::Unknown),
        ];
        for (command, language) in cases {
            let mut argv = words(command);
            if command == "sh -c" {
                argv = vec!["sh".into(), "-c".into(), "exec node s.js".into()];
            }
            assert_eq!(
                detect_language(&argv, Some(dir.path())),
                language,
                "{command}"
            );
        }
        let inline = vec![
            "sh".to_string(),
            "-c".into(),
            "exec node s.js {port}".into(),
        ];
        assert_eq!(detect_language(&inline, None), Language::Node);
    }
}
