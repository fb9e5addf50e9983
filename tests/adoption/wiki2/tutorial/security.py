from pyramid.csrf import CookieCSRFStoragePolicy

from . import models


def load_user(session, request):
    return request.dbsession.get(models.User, int(session.key))

def groupfinder(userid, request):
    user = request.identity
    return ['u:' + str(user.id), 'role:' + user.role]

def includeme(config):
    config.set_csrf_storage_policy(CookieCSRFStoragePolicy())
    config.set_default_csrf_options(require_csrf=True)

    config.include('pyramid_jeff')
