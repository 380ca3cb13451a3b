//! std::fs in the preopened directory /data.
use std::fs::{self, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};

fn main() -> std::io::Result<()> {
    let input = fs::read_to_string("/data/input.txt");
    match &input {
        Ok(s) => println!(
            "input.txt: {} bytes, {} lines, first: {:?}",
            s.len(),
            s.lines().count(),
            s.lines().next()
        ),
        Err(e) => println!("input.txt: error kind {:?}", e.kind()),
    }
    fs::create_dir_all("/data/rs/a/b")?;
    fs::write("/data/rs/a/b/data.bin", (0u8..=255).collect::<Vec<u8>>())?;
    let back = fs::read("/data/rs/a/b/data.bin")?;
    println!(
        "binary round trip: {} bytes, sum {}",
        back.len(),
        back.iter().map(|&b| b as u32).sum::<u32>()
    );

    let mut f = OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open("/data/rs/words.txt")?;
    for (i, w) in ["alpha", "beta", "gamma", "delta"].iter().enumerate() {
        writeln!(f, "{i} {w}")?;
    }
    f.seek(SeekFrom::Start(2))?;
    let mut five = [0u8; 5];
    f.read_exact(&mut five)?;
    println!("seek+read: {:?}", String::from_utf8_lossy(&five));
    let end = f.seek(SeekFrom::End(0))?;
    println!("length via seek: {end}");
    drop(f);

    let mut a = OpenOptions::new().append(true).open("/data/rs/words.txt")?;
    a.write_all(b"4 epsilon\n")?;
    drop(a);
    let lines: Vec<String> = BufReader::new(fs::File::open("/data/rs/words.txt")?)
        .lines()
        .collect::<Result<_, _>>()?;
    println!("lines: {:?}", lines);

    fs::rename("/data/rs/words.txt", "/data/rs/a/words-renamed.txt")?;
    fs::copy("/data/rs/a/words-renamed.txt", "/data/rs/copy.txt")?;
    fs::write("/data/rs/delete-me", "x")?;
    fs::remove_file("/data/rs/delete-me")?;
    println!(
        "remove missing: {:?}",
        fs::remove_file("/data/rs/delete-me").map_err(|e| e.kind())
    );
    println!(
        "read missing: {:?}",
        fs::read("/data/nothing-here").map_err(|e| e.kind())
    );
    println!(
        "create_dir existing: {:?}",
        fs::create_dir("/data/rs").map_err(|e| e.kind())
    );
    fs::create_dir("/data/rs/tmpdir")?;
    fs::remove_dir("/data/rs/tmpdir")?;

    fn walk(dir: &str, depth: usize) -> std::io::Result<()> {
        let mut entries: Vec<_> = fs::read_dir(dir)?.collect::<Result<_, _>>()?;
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let md = e.metadata()?;
            let name = e.file_name().into_string().unwrap();
            if md.is_dir() {
                println!("{}{}/", "  ".repeat(depth), name);
                walk(&format!("{dir}/{name}"), depth + 1)?;
            } else {
                println!("{}{} ({} bytes)", "  ".repeat(depth), name, md.len());
            }
        }
        Ok(())
    }
    walk("/data", 0)?;
    if let Ok(s) = input {
        fs::write("/data/input-upper.txt", s.to_uppercase())?;
    }
    Ok(())
}
