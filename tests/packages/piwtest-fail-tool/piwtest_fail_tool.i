/* piwheels test package: add(a, b) in C, wrapped by SWIG (which is not installed). */
%module piwtest_fail_tool

%inline %{
int add(int a, int b)
{
    return a + b;
}
%}
