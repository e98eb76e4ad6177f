from django.urls import path

from marketplace.earnings import views

urlpatterns = [
    path("", views.earnings_page, name="earnings"),
    path("connect", views.connect_start, name="earnings-connect"),
    path("connect/refresh", views.connect_refresh, name="earnings-connect-refresh"),
    path("dashboard", views.dashboard, name="earnings-dashboard"),
    path("statement.csv", views.statement_csv, name="earnings-statement"),
]
