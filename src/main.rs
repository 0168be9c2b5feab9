fn main() {
    print!("{}", wsgate::crd::crd_yaml());
}
