using System.Runtime.CompilerServices;

// Every native signature is blittable; nothing is marshalled behind the caller's back.
[assembly: DisableRuntimeMarshalling]
