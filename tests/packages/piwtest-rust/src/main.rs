// Prints a line, so that a test can run the program the wheel installs.
fn main() {
    println!("piwtest-rust: built by cargo");
}
