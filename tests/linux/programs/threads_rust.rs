// Rust std::thread, Mutex and an mpsc channel (rustc -C target-feature=+crt-static): the
// runtime polls fds 0-2 at startup, spawns with clone3 and parks threads on futexes.
use std::sync::{Arc, Mutex, mpsc};
use std::thread;
fn main() {
    let total = Arc::new(Mutex::new(0u64));
    let (tx, rx) = mpsc::channel();
    let mut hs = vec![];
    for i in 0..4u64 {
        let total = Arc::clone(&total);
        let tx = tx.clone();
        hs.push(thread::spawn(move || {
            for k in 0..1000u64 { *total.lock().unwrap() += i * k; }
            tx.send(i).unwrap();
            i * 10
        }));
    }
    drop(tx);
    let got: u64 = rx.iter().sum();
    let rets: u64 = hs.into_iter().map(|h| h.join().unwrap()).sum();
    println!("total {} got {} rets {}", *total.lock().unwrap(), got, rets);
}
