//! rvsadm, the ipvsadm-compatible administration tool for rvsd.

fn main() {
    let argv: Vec<String> = std::env::args().collect();
    std::process::exit(rvsadm::run::main_with(&argv));
}
